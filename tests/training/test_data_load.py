"""The dispatcher `load_dataset` with feature tables, and data errors on the training CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recserve.training.data import load_dataset

from .conftest import write


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
