"""CSV/TSV/Parquet event logs: optional columns, bad rows by kind and line, filters,
compression, timestamps."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recserve.training.data import (
    DataError,
    LoadOptions,
    load_dataset,
    load_event_log,
    parse_timestamps,
    textio,
)

from .conftest import write

LENIENT = LoadOptions(max_bad_fraction=1.0)


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
    monkeypatch.setattr(textio, "BLOCK_BYTES", 64)
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
