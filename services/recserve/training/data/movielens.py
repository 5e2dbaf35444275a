"""MovieLens as distributed by GroupLens: ratings in u.data (100K), ratings.dat (1M/10M) or
ratings.csv (20M/25M/32M), item and user side files next to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from recserve.model.features import RawValue
from recserve.training.data.events import EventAccumulator, check_quality, resolve_columns
from recserve.training.data.model import (
    DEFAULT_LOAD_OPTIONS,
    DataError,
    Dataset,
    LoadOptions,
    LoadReport,
)
from recserve.training.data.textio import iter_text_blocks, open_binary, read_header

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def load_movielens(
    path: str | Path,
    options: LoadOptions = DEFAULT_LOAD_OPTIONS,
    say: Callable[[str], None] | None = None,
) -> Dataset:
    """MovieLens as distributed by GroupLens: u.data (100K), ratings.dat (1M/10M) or
    ratings.csv (20M/25M/32M), a file or its directory; item/user files next to it are used."""
    path = Path(path)
    if path.is_dir():
        for candidate in ("u.data", "ratings.dat", "ratings.csv"):
            if (path / candidate).is_file():
                path = path / candidate
                break
        else:
            raise DataError("no u.data, ratings.dat or ratings.csv in this directory", file=path)
    report = LoadReport(files=[str(path)])
    acc = EventAccumulator(report, options, say)
    base = {
        "user_id": "user_id",
        "item_id": "item_id",
        "timestamp": "timestamp",
        "weight": "rating",
    }
    with open_binary(path) as stream:
        if path.name.startswith("ratings.csv") or path.suffix == ".csv":
            header = read_header(stream, str(path), ",")
            columns = resolve_columns(header, str(path), ())
            blocks = iter_text_blocks(
                stream,
                str(path),
                columns=header,
                delimiter=",",
                first_line=2,
                report=report,
                quote=True,
            )
        elif ".dat" in path.suffixes:
            # "1::1193::5::978300760": split on ':' and keep every other field.
            names = ["user_id", "_a", "item_id", "_b", "rating", "_c", "timestamp"]
            columns = base
            blocks = iter_text_blocks(
                stream,
                str(path),
                columns=names,
                delimiter=":",
                first_line=1,
                report=report,
                quote=False,
                keep=["user_id", "item_id", "rating", "timestamp"],
            )
        else:
            columns = base
            blocks = iter_text_blocks(
                stream,
                str(path),
                columns=["user_id", "item_id", "rating", "timestamp"],
                delimiter="\t",
                first_line=1,
                report=report,
                quote=False,
            )
        for block in blocks:
            acc.add(str(path), block.table, block.lines, columns)
    interactions = acc.finish()
    check_quality(report, options, str(path))
    items, users = _movielens_side_tables(path.parent)
    return Dataset(path.parent.name or path.stem, interactions, items, users, report)


def _movielens_side_tables(
    directory: Path,
) -> tuple[dict[str, dict[str, RawValue]], dict[str, dict[str, str]]]:
    items: dict[str, dict[str, RawValue]] = {}
    users: dict[str, dict[str, str]] = {}
    if (directory / "u.item").is_file():
        for fields in _split_lines(directory / "u.item", "|"):
            if len(fields) >= 5 + len(ML100K_GENRES):
                flags = fields[5 : 5 + len(ML100K_GENRES)]
                genres = [
                    g for g, flag in zip(ML100K_GENRES, flags, strict=True) if flag.strip() == "1"
                ]
                items[fields[0]] = {"genre": genres, "year": fields[2][-4:]}
    elif (directory / "movies.dat").is_file() or (directory / "movies.csv").is_file():
        dat = (directory / "movies.dat").is_file()
        rows = (
            _split_lines(directory / "movies.dat", "::")
            if dat
            else _csv_rows(directory / "movies.csv")
        )
        for fields in rows:
            if len(fields) >= 3 and fields[0] != "movieId":
                title = fields[1].strip()
                year = title[-5:-1] if title.endswith(")") else ""
                items[fields[0]] = {"genre": [g for g in fields[2].split("|") if g], "year": year}
    if (directory / "u.user").is_file():
        for fields in _split_lines(directory / "u.user", "|"):
            if len(fields) >= 4:
                users[fields[0]] = {"age": fields[1], "gender": fields[2], "occupation": fields[3]}
    elif (directory / "users.dat").is_file():
        for fields in _split_lines(directory / "users.dat", "::"):
            if len(fields) >= 4:
                users[fields[0]] = {"gender": fields[1], "age": fields[2], "occupation": fields[3]}
    return items, users


def _split_lines(path: Path, separator: str) -> Iterator[list[str]]:
    # GroupLens side files are Latin-1 (accented titles).
    with path.open(encoding="latin-1") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\r\n").split(separator)


def _csv_rows(path: Path) -> Iterator[list[str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.reader(fh)
