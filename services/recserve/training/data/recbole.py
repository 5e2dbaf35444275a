"""RecBole atomic files: `<name>.inter` (+ optional `.item`, `.user`) with typed headers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import pyarrow as pa

from recserve.model.features import RawValue
from recserve.training.data.events import EventAccumulator, check_quality, resolve_columns
from recserve.training.data.features import features_from_table, single_valued
from recserve.training.data.model import (
    DEFAULT_LOAD_OPTIONS,
    DataError,
    Dataset,
    Interactions,
    LoadOptions,
    LoadReport,
)
from recserve.training.data.textio import dedupe_names, iter_text_blocks, open_binary, read_header


def _recbole_header(stream: IO[bytes], name: str) -> tuple[list[str], dict[str, str]]:
    header = read_header(stream, name, "\t")
    names, types = [], {}
    for position, column in enumerate(header):
        field_name, sep, field_type = column.partition(":")
        if not sep or field_type not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(
                f"RecBole header field {column!r} (position {position + 1}) must look like name:token, "
                "name:token_seq, name:float or name:float_seq",
                file=name,
                line=1,
                column=column,
            )
        names.append(field_name)
        types[field_name] = field_type
    return dedupe_names(names), types


def read_recbole_events(
    stream: IO[bytes],
    name: str,
    options: LoadOptions,
    report: LoadReport,
    say: Callable[[str], None] | None = None,
) -> Interactions:
    names, _types = _recbole_header(stream, name)
    acc = EventAccumulator(report, options, say)
    columns = _resolve_columns_recbole(names, name, options)
    if columns["timestamp"] == "__row__":
        report.notes.append(f"{name} has no timestamp field: file order is used as time order")
    for block in iter_text_blocks(
        stream,
        name,
        columns=names,
        delimiter="\t",
        first_line=2,
        report=report,
        quote=False,
        keep=sorted(set(columns.values()) - {"__row__"}),
    ):
        table = block.table
        if columns["timestamp"] == "__row__":
            table = table.append_column("__row__", pa.array(block.lines.astype(str)))
        acc.add(name, table, block.lines, columns)
    return acc.finish()


def _resolve_columns_recbole(
    names: Sequence[str], name: str, options: LoadOptions
) -> dict[str, str]:
    if "timestamp" not in names:
        # Some RecBole datasets have no time; file order is the only order there is.
        columns = resolve_columns([*names, "timestamp"], name, options.context_columns)
        columns["timestamp"] = "__row__"
        return columns
    return resolve_columns(names, name, options.context_columns)


def read_recbole_features(
    stream: IO[bytes], name: str, id_field: str
) -> dict[str, dict[str, RawValue]]:
    names, types = _recbole_header(stream, name)
    if id_field not in names:
        raise DataError(
            f"has no {id_field} field (header: {names})", file=name, line=1, column=id_field
        )
    report = LoadReport(files=[name])
    blocks = list(
        iter_text_blocks(
            stream, name, columns=names, delimiter="\t", first_line=2, report=report, quote=False
        )
    )
    if report.bad:
        raise DataError(f"malformed row: {report.examples['malformed_row']}", file=name)
    table = pa.concat_tables([b.table for b in blocks])
    multi = [n for n in names if types.get(n, "").endswith("_seq")]
    return features_from_table(table, id_field, name, multi=multi, multi_separator=" ")


def load_recbole(
    path: str | Path,
    options: LoadOptions = DEFAULT_LOAD_OPTIONS,
    say: Callable[[str], None] | None = None,
) -> Dataset:
    """A RecBole atomic dataset: `<dir>/<name>.inter` (+ optional .item, .user), or the .inter path."""
    path = Path(path)
    inter = path if path.suffix == ".inter" else _single(path, "*.inter")
    report = LoadReport(files=[str(inter)])
    with open_binary(inter) as stream:
        interactions = read_recbole_events(stream, str(inter), options, report, say)
    check_quality(report, options, str(inter))
    item_path, user_path = inter.with_suffix(".item"), inter.with_suffix(".user")
    items: dict[str, dict[str, RawValue]] = {}
    users: dict[str, dict[str, RawValue]] = {}
    if item_path.is_file():
        with open_binary(item_path) as stream:
            items = read_recbole_features(stream, str(item_path), "item_id")
    if user_path.is_file():
        with open_binary(user_path) as stream:
            users = read_recbole_features(stream, str(user_path), "user_id")
    return Dataset(inter.stem, interactions, items, single_valued(users), report)


def _single(directory: Path, pattern: str) -> Path:
    if not directory.is_dir():
        raise DataError("not found (expected a directory or a file)", file=directory)
    matches = sorted(directory.glob(pattern))
    if len(matches) != 1:
        raise DataError(
            f"expected exactly one {pattern} file, found {[m.name for m in matches]}",
            file=directory,
        )
    return matches[0]
