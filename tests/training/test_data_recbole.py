"""RecBole atomic files."""

from __future__ import annotations

from pathlib import Path

import pytest

from recserve.training.data import DataError, load_dataset, load_recbole

from .conftest import write


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
