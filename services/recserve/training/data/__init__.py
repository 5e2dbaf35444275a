"""Interaction data in: MovieLens-100K (default), RecBole atomic files, MovieLens u.data /
ratings.dat / ratings.csv, and users' own CSV/Parquet logs with optional feature tables.

One reader per module (`movielens`, `recbole`, `wheel` for MovieLens-100K inside the recbole
wheel, `eventlog` for CSV/Parquet logs, `synthetic_dir`, `features` for feature tables), on
shared layers: `model` (the types), `textio` (delimited text in blocks), `events` (validation
and id coding), `timestamps`. `load_dataset` below picks the reader.

Every loader streams its input in blocks and ends in the same validation: rows with a missing
id, an unparsable timestamp or weight, a wrong number of fields, or that duplicate an earlier
row are dropped and counted by kind, with the first occurrence's file:line. A file that cannot
be used at all raises `DataError` naming the file, line and column.

    python -m recserve.training.data fetch-movielens --dest data
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recserve.training.data.eventlog import is_parquet, load_event_log
from recserve.training.data.features import load_feature_table, single_valued
from recserve.training.data.model import (
    DEFAULT_LOAD_OPTIONS,
    DEFAULT_MAX_BAD_FRACTION,
    DataError,
    Dataset,
    Interactions,
    LoadOptions,
    LoadReport,
)
from recserve.training.data.movielens import load_movielens
from recserve.training.data.recbole import load_recbole
from recserve.training.data.synthetic_dir import SYNTHETIC_MANIFEST, load_synthetic_dir
from recserve.training.data.timestamps import parse_timestamps
from recserve.training.data.wheel import fetch_movielens, load_movielens_100k

__all__ = [
    "DEFAULT_MAX_BAD_FRACTION",
    "FORMATS",
    "SYNTHETIC_MANIFEST",
    "DataError",
    "Dataset",
    "Interactions",
    "LoadOptions",
    "LoadReport",
    "fetch_movielens",
    "load_dataset",
    "load_event_log",
    "load_feature_table",
    "load_movielens",
    "load_movielens_100k",
    "load_recbole",
    "load_synthetic_dir",
    "parse_timestamps",
]

FORMATS = ("movielens", "recbole", "csv", "parquet", "synthetic")


def load_dataset(
    data: str | Path | None,
    fmt: str | None = None,
    options: LoadOptions = DEFAULT_LOAD_OPTIONS,
    *,
    item_features: str | Path | None = None,
    user_features: str | Path | None = None,
    data_dir: str | Path = "data",
    say: Callable[[str], None] | None = None,
) -> Dataset:
    """`data` None = MovieLens-100K from `data_dir`. `fmt` None = guessed from the path."""
    if data is None:
        if fmt not in (None, "movielens"):
            raise DataError(f"--format {fmt} needs --data PATH")
        dataset = load_movielens_100k(data_dir, options)
    else:
        path = Path(data)
        if not path.exists():
            raise DataError("not found", file=path)
        fmt = fmt or _guess_format(path)
        if fmt == "movielens":
            dataset = load_movielens(path, options, say)
        elif fmt == "recbole":
            dataset = load_recbole(path, options, say)
        elif fmt == "synthetic":
            dataset = load_synthetic_dir(path, options, say)
        elif fmt in ("csv", "parquet"):
            interactions, report = load_event_log(path, options, say)
            dataset = Dataset(path.stem, interactions, {}, {}, report)
        else:
            raise DataError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if item_features is not None:
        dataset.item_features = load_feature_table(item_features, "item")
    if user_features is not None:
        dataset.user_features = single_valued(load_feature_table(user_features, "user"))
    return dataset


def _guess_format(path: Path) -> str:
    if path.is_dir():
        if (path / SYNTHETIC_MANIFEST).is_file():
            return "synthetic"
        if any(path.glob("*.inter")):
            return "recbole"
        return "movielens"
    if path.suffix == ".inter":
        return "recbole"
    if path.name in ("u.data", "ratings.dat"):
        return "movielens"
    return "parquet" if is_parquet(path) else "csv"
