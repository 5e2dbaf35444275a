from __future__ import annotations

import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recserve.training import datasets
from recserve.training.datasets import (
    DataError,
    LoadOptions,
    fetch_movielens,
    load_dataset,
    load_event_log,
    load_movielens,
    load_movielens_100k,
    load_recbole,
    parse_timestamps,
)

LENIENT = LoadOptions(max_bad_fraction=1.0)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_log_with_optional_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp,event_type,weight,device\n"
        "u1,a,1700000000,view,1,ios\n"
        "u1,b,2023-11-14T22:13:21Z,click,2.5,ios\n"
        "u2,a,1700000000123,view,,web\n"
        'u2,"c,d",2023-11-14 22:13:25,purchase,5,\n',
    )
    inter, report = load_event_log(path, LoadOptions(context_columns=("device",)))
    assert report.kept == 4 and not report.bad
    assert inter.user_ids == ["u1", "u2"] and inter.item_ids == ["a", "b", "c,d"]
    np.testing.assert_array_equal(
        inter.timestamps, [1700000000, 1700000001, 1700000000, 1700000005]
    )
    np.testing.assert_allclose(inter.weights, [1.0, 2.5, 1.0, 5.0])
    codes, categories = inter.context["device"]
    assert [categories[c] if c >= 0 else None for c in codes] == ["ios", "ios", "web", None]


def test_bad_rows_are_counted_by_kind_with_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp,weight\n"  # line 1
        "u1,a,100,1\n"  # 2 ok
        ",a,101,1\n"  # 3 missing user
        "u1,,102,1\n"  # 4 missing item
        "u1,b,yesterday,1\n"  # 5 bad timestamp
        "u1,c,103,lots\n"  # 6 bad weight
        "u1,d,104\n"  # 7 malformed (3 fields)
        "\n"  # 8 blank
        "u1,a,100,1\n"  # 9 duplicate of line 2
        "u2,e,105,1,extra\n"  # 10 malformed (5 fields)
        "u2,f,106,1\n",  # 11 ok
    )
    inter, report = load_event_log(path, LENIENT)
    assert report.kept == 2 and len(inter) == 2
    assert report.bad == {
        "missing_user_id": 1,
        "missing_item_id": 1,
        "bad_timestamp": 1,
        "bad_weight": 1,
        "malformed_row": 2,
        "duplicate": 1,
    }
    assert report.blank_lines == 1
    assert "line 3" in report.examples["missing_user_id"]
    assert "line 4" in report.examples["missing_item_id"]
    assert (
        "line 5" in report.examples["bad_timestamp"]
        and "yesterday" in report.examples["bad_timestamp"]
    )
    assert "line 6" in report.examples["bad_weight"]
    assert f"{path}:7" in report.examples["malformed_row"]
    assert "line 9" in report.examples["duplicate"]
    summary = "\n".join(report.summary())
    assert "dropped 1 bad timestamp" in summary and "skipped 1 blank lines" in summary


def test_line_numbers_survive_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "BLOCK_BYTES", 64)
    lines = ["user_id,item_id,timestamp"]
    for i in range(200):
        lines.append(f"u{i % 7},i{i},{1000 + i}" if i != 150 else "u1,i150")
    lines[181] = "u1,i180,not-a-time"
    path = write(tmp_path / "log.csv", "\n".join(lines) + "\n")
    inter, report = load_event_log(path, LENIENT)
    assert report.kept == 198
    assert f"{path}:152" in report.examples["malformed_row"]
    assert "line 182" in report.examples["bad_timestamp"]
    assert sorted(inter.item_ids) == sorted(f"i{i}" for i in range(200) if i not in (150, 180))


def test_unusable_files_fail_with_file_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_event_log(write(tmp_path / "a.csv", "user,movie,when\n1,2,3\n"))
    assert str(info.value).startswith(
        f"{tmp_path / 'a.csv'}, line 1, column 'item_id': required column missing"
    )

    with pytest.raises(DataError, match="is empty"):
        load_event_log(write(tmp_path / "empty.csv", ""))

    (tmp_path / "latin.csv").write_bytes(b"user_id,item_id,timestamp\nu1,a,1\nu2,caf\xe9,2\n")
    with pytest.raises(DataError, match="UTF-8") as info:
        load_event_log(tmp_path / "latin.csv")
    assert info.value.line == 3 and info.value.column == "item_id"

    many_bad = "user_id,item_id,timestamp\n" + "u1,a,never\n" * 5 + "u1,b,1\n"
    with pytest.raises(DataError, match="5 of 6 rows are unusable") as info:
        load_event_log(write(tmp_path / "bad.csv", many_bad))
    assert "line 2" in str(info.value)

    with pytest.raises(DataError, match="no usable rows"):
        load_event_log(
            write(tmp_path / "allbad.csv", "user_id,item_id,timestamp\nu1,a,x\n"), LENIENT
        )

    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope.csv")

    with pytest.raises(DataError, match="comma-separated"):
        load_event_log(write(tmp_path / "semi.csv", "user_id;item_id;timestamp\n1;2;3\n"))


def test_filters_are_reported_not_counted_as_bad(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.tsv",
        "user_id\titem_id\ttimestamp\tevent_type\trating\nu1\ta\t1\tview\t1\nu1\tb\t2\tbuy\t5\nu2\tc\t3\tbuy\t2\n",
    )
    inter, report = load_event_log(path, LoadOptions(min_weight=3, event_types=frozenset({"buy"})))
    assert inter.item_ids == ["b"] and report.filtered == 2 and not report.bad
    with pytest.raises(DataError, match="no event_type column"):
        load_event_log(
            write(tmp_path / "x.csv", "user_id,item_id,timestamp\nu,i,1\n"),
            LoadOptions(event_types=frozenset({"a"})),
        )


def test_compressed_csv(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("user_id,item_id,timestamp\nu1,a,1\nu1,b,2\n")
    inter, _ = load_event_log(path)
    assert inter.item_ids == ["a", "b"]


def test_parquet_typed_columns_and_row_numbers(tmp_path: Path) -> None:
    table = pa.table(
        {
            "userId": pa.array([1, 1, None, 2], pa.int64()),
            "itemId": pa.array([10, 11, 12, 10], pa.int64()),
            "ts": pa.array([1_700_000_000_000, None, 1, 2], pa.timestamp("ms")),
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    inter, report = load_event_log(tmp_path / "log.parquet", LENIENT)
    assert inter.user_ids == ["1", "2"] and inter.item_ids == ["10"]
    np.testing.assert_array_equal(inter.timestamps, [1_700_000_000, 0])
    assert report.bad == {"bad_timestamp": 1, "missing_user_id": 1}
    assert (
        "row 2" in report.examples["bad_timestamp"]
        and "row 3" in report.examples["missing_user_id"]
    )
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_event_log(tmp_path / "junk.parquet")


def test_timestamp_parsing() -> None:
    values, ok = parse_timestamps(
        pa.array(
            [
                "1700000000",
                "1.7e9",
                "2023-11-14T22:13:20+01:00",
                "2023-11-14",
                "",
                "12:00",
                None,
                "-5",
            ]
        )
    )
    assert ok.tolist() == [True, True, True, True, False, False, False, False]
    assert values[:4].tolist() == [1700000000, 1700000000, 1699996400, 1699920000]


def _recbole(
    tmp_path: Path,
    inter_header: str = "user_id:token\titem_id:token\trating:float\ttimestamp:float",
) -> Path:
    root = tmp_path / "rb"
    root.mkdir()
    write(root / "rb.inter", f"{inter_header}\n1\t10\t4\t100\n1\t11\t3\t101\n2\t10\t5\t102\n")
    write(
        root / "rb.item",
        "item_id:token\ttitle:token_seq\tyear:token\tclass:token_seq\n10\tThe Film\t1995\tAction Drama\n11\tOther\t1990\tComedy\n",
    )
    write(root / "rb.user", "user_id:token\tage:token\tgender:token\n1\t24\tM\n2\t53\tF\n")
    return root


def test_recbole_atomic_files(tmp_path: Path) -> None:
    dataset = load_recbole(_recbole(tmp_path))
    assert dataset.name == "rb" and len(dataset.interactions) == 3
    assert dataset.item_features["10"] == {
        "title": ["The", "Film"],
        "year": "1995",
        "class": ["Action", "Drama"],
    }
    assert dataset.user_features["2"] == {"age": "53", "gender": "F"}
    assert load_dataset(tmp_path / "rb").name == "rb"  # format guessed from the directory


def test_recbole_bad_header_and_missing_timestamp(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_recbole(_recbole(tmp_path, "user_id:token\titem_id:weird\ttimestamp:float"))
    assert info.value.line == 1 and info.value.column == "item_id:weird"
    other = tmp_path / "other"
    other.mkdir()
    write(other / "x.inter", "user_id:token\titem_id:token\n1\t10\n1\t11\n")
    dataset = load_recbole(other / "x.inter")
    assert dataset.interactions.timestamps.tolist() == [2, 3]
    assert any("no timestamp" in note for note in dataset.report.notes)


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


def test_feature_tables(tmp_path: Path) -> None:
    write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu1,a,1\nu1,b,2\n")
    write(tmp_path / "items.csv", "item_id,genres,year\na,x|y,1990\nb,z,\n")
    pq.write_table(pa.table({"user_id": ["u1"], "age": [33]}), tmp_path / "users.parquet")
    dataset = load_dataset(
        tmp_path / "log.csv",
        item_features=tmp_path / "items.csv",
        user_features=tmp_path / "users.parquet",
    )
    assert dataset.item_features == {
        "a": {"genres": ["x", "y"], "year": "1990"},
        "b": {"genres": ["z"]},
    }
    assert dataset.user_features == {"u1": {"age": "33"}}


def _fake_wheel(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            datasets.ML100K_MEMBER.format("inter"),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t5\t3\t10\n1\t6\t4\t11\n2\t5\t1\t12\n",
        )
        archive.writestr(
            datasets.ML100K_MEMBER.format("item"),
            "item_id:token\trelease_year:token\tclass:token_seq\n5\t1995\tDrama\n6\t1994\tComedy War\n",
        )
        archive.writestr(
            datasets.ML100K_MEMBER.format("user"),
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
        [sys.executable, "-m", "recserve.training.datasets", "fetch-movielens", "--dest", str(tmp_path / "data")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and str(wheel) in result.stdout


def test_broken_wheel_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid wheel"):
        fetch_movielens(tmp_path)


def test_cli_reports_data_errors_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.csv", "user,item\n1,2\n")
    result = subprocess.run(
        [sys.executable, "-m", "recserve.training", "train", "--bundles", str(tmp_path / "b"), "--data", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {bad}, line 1, column 'timestamp'")
    )
    assert "Traceback" not in result.stderr
