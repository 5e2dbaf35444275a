"""Interaction data in: MovieLens-100K (default), RecBole atomic files, MovieLens u.data /
ratings.dat / ratings.csv, and users' own CSV/Parquet logs with optional feature tables.

Every loader streams its input in blocks and ends in the same validation: rows with a missing
id, an unparsable timestamp or weight, a wrong number of fields, or that duplicate an earlier
row are dropped and counted by kind, with the first occurrence's file:line. A file that cannot
be used at all raises `DataError` naming the file, line and column.

    python -m recserve.training.datasets fetch-movielens --dest data
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recserve.model.features import MULTI_VALUE_SEPARATOR, RawValue

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL_GLOB = "recbole-1.2.1-*.whl"
ML100K_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"
FORMATS = ("movielens", "recbole", "csv", "parquet", "synthetic")
BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 1 << 20
DEFAULT_MAX_BAD_FRACTION = 0.1
PROGRESS_ROWS = 5_000_000

# Kinds of dropped rows, in report order. blank_line is harmless and never counts as bad.
BAD_KINDS = (
    "malformed_row",
    "missing_user_id",
    "missing_item_id",
    "bad_timestamp",
    "bad_weight",
    "duplicate",
)
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userid", "user"),
    "item_id": ("item_id", "itemid", "movieid", "movie_id", "item"),
    "timestamp": ("timestamp", "time", "ts", "event_time", "datetime"),
    "event_type": ("event_type", "event", "type"),
    "weight": ("weight", "rating", "value"),
}


class DataError(Exception):
    """Input that cannot be used; str() is the whole user-facing message."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ):
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.column = column
        self.unit = unit
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.line is not None:
            where.append(f"{self.unit} {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


# ------------------------------------------------------------------------------ data model


@dataclass
class LoadReport:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    kept: int = 0
    blank_lines: int = 0
    filtered: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_bad(self, kind: str, count: int, example: str) -> None:
        if count <= 0:
            return
        self.bad[kind] = self.bad.get(kind, 0) + count
        self.examples.setdefault(kind, example)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def summary(self) -> list[str]:
        lines = [f"read {self.rows:,} rows from {', '.join(self.files)}; kept {self.kept:,}"]
        if self.filtered:
            lines.append(f"filtered out by --min-weight/--event-types: {self.filtered:,}")
        for kind in BAD_KINDS:
            if kind in self.bad:
                lines.append(
                    f"dropped {self.bad[kind]:,} {kind.replace('_', ' ')} (first: {self.examples[kind]})"
                )
        if self.blank_lines:
            lines.append(f"skipped {self.blank_lines:,} blank lines")
        lines.extend(self.notes)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "rows": self.rows,
            "kept": self.kept,
            "blank_lines": self.blank_lines,
            "filtered": self.filtered,
            "bad": dict(self.bad),
            "examples": dict(self.examples),
            "notes": list(self.notes),
        }


@dataclass
class Interactions:
    """One row per event; ids are codes into user_ids / item_ids (first-seen order)."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray  # int32
    items: np.ndarray  # int32
    timestamps: np.ndarray  # int64 seconds since the epoch
    weights: np.ndarray  # float32
    # Per-event categorical context (e.g. device): codes (int32, -1 = missing) + categories.
    context: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for array in (self.users, self.items, self.timestamps, self.weights):
            digest.update(np.ascontiguousarray(array).tobytes())
        for ids in (self.user_ids, self.item_ids):
            digest.update("\x00".join(ids).encode())
        return digest.hexdigest()


@dataclass
class Dataset:
    name: str
    interactions: Interactions
    item_features: dict[str, dict[str, RawValue]]
    user_features: dict[str, dict[str, str]]
    report: LoadReport


@dataclass(frozen=True)
class LoadOptions:
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    min_weight: float | None = None
    event_types: frozenset[str] | None = None
    context_columns: tuple[str, ...] = ()


# --------------------------------------------------------------------------- text blocks


@dataclass
class _Block:
    table: pa.Table
    lines: np.ndarray  # int64 physical line number of each row


def _iter_text_blocks(
    stream: IO[bytes],
    name: str,
    *,
    columns: Sequence[str],
    delimiter: str,
    first_line: int,
    report: LoadReport,
    quote: bool,
    keep: Sequence[str] | None = None,
) -> Iterator[_Block]:
    """Delimited text, parsed block by block with exact line numbers (a quoted field may not
    span lines). Rows with the wrong number of fields are counted as malformed and skipped."""
    line_offset = first_line - 1
    rest = b""
    while True:
        chunk = stream.read(BLOCK_BYTES)
        data = rest + chunk
        if not data:
            return
        if chunk:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
        else:
            rest = b""
        n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        skipped: list[int] = []

        def on_invalid(row: Any, offset: int = line_offset, sink: list[int] = skipped) -> str:
            sink.append(row.number)
            report.add_bad(
                "malformed_row",
                1,
                f"{name}:{offset + row.number}: expected {row.expected_columns} fields, got {row.actual_columns}",
            )
            return "skip"

        try:
            table = pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(
                    column_names=list(columns), use_threads=False, block_size=len(data) + 1
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    quote_char='"' if quote else False,
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=False,
                    include_columns=list(keep) if keep is not None else None,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise _locate_text_error(exc, data, name, line_offset, columns) from None
        numbers = np.setdiff1d(
            np.arange(1, n_lines + 1, dtype=np.int64), np.asarray(skipped, dtype=np.int64)
        )
        if numbers.size != table.num_rows:
            raise DataError(
                "could not map rows to line numbers (a quoted field spanning lines?)",
                file=name,
                line=line_offset + 1,
            )
        yield _Block(table, numbers + line_offset)
        line_offset += n_lines
        if not chunk:
            return


def _locate_text_error(
    exc: Exception, data: bytes, name: str, line_offset: int, columns: Sequence[str]
) -> DataError:
    for i, raw in enumerate(data.split(b"\n")):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            field_no = raw[: bad.start].count(b"\t") + raw[: bad.start].count(b",")
            column = columns[field_no] if field_no < len(columns) else None
            return DataError(
                "is not valid UTF-8 text (pass the right encoding or re-encode the file)",
                file=name,
                line=line_offset + i + 1,
                column=column,
            )
    return DataError(f"cannot parse: {exc}", file=name, line=line_offset + 1)


def _open_binary(path: Path) -> IO[bytes]:
    """Plain or compressed (.gz, .bz2, .zst by extension) file as a binary stream."""
    if not path.is_file():
        raise DataError("file not found", file=path)
    stream: IO[bytes] = pa.input_stream(str(path), compression="detect")
    return stream


def _read_header(stream: IO[bytes], name: str, delimiter: str) -> list[str]:
    raw = b""
    while not raw.endswith(b"\n"):
        byte = stream.read(1)
        if not byte:
            break
        raw += byte
    if not raw.strip():
        raise DataError("is empty (expected a header line)", file=name, line=1)
    try:
        text = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError("header is not valid UTF-8 text", file=name, line=1) from None
    return [c.strip().strip('"') for c in text.split(delimiter)]


# --------------------------------------------------------------------------- event logs


def _resolve_columns(
    header: Sequence[str], name: str, context: Sequence[str], unit: str = "line"
) -> dict[str, str]:
    """Canonical field -> column name in the file (case-insensitive aliases)."""
    lowered = {h.lower(): h for h in header}
    found: dict[str, str] = {}
    for canonical, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                found[canonical] = lowered[alias]
                break
    for required in ("user_id", "item_id", "timestamp"):
        if required not in found:
            raise DataError(
                f"required column missing (header has {list(header)}; accepted names: "
                f"{', '.join(COLUMN_ALIASES[required])})",
                file=name,
                line=1,
                column=required,
                unit=unit,
            )
    for column in context:
        if column not in header:
            raise DataError(
                f"context column not in header {list(header)}",
                file=name,
                line=1,
                column=column,
                unit=unit,
            )
        found[f"context:{column}"] = column
    return found


class _EventAccumulator:
    """Validates blocks of raw event rows and accumulates clean, coded arrays."""

    def __init__(
        self, report: LoadReport, options: LoadOptions, say: Callable[[str], None] | None = None
    ):
        self.report = report
        self.options = options
        self.say = say
        self.user_codes: dict[str, int] = {}
        self.item_codes: dict[str, int] = {}
        self.context_codes: dict[str, dict[str, int]] = {c: {} for c in options.context_columns}
        self.event_codes: dict[str, int] = {}
        self._parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("users", "items", "ts", "weights", "events", "lines", "files")
        }
        self._ctx_parts: dict[str, list[np.ndarray]] = {c: [] for c in options.context_columns}
        self._file_names: list[str] = []

    def add(
        self,
        name: str,
        table: pa.Table,
        lines: np.ndarray,
        columns: Mapping[str, str],
        unit: str = "line",
    ) -> None:
        report = self.report
        if self.options.event_types is not None and "event_type" not in columns:
            raise DataError(
                "--event-types given but the file has no event_type column",
                file=name,
                line=1,
                unit=unit,
            )
        n = table.num_rows
        if self.say and (report.rows + n) // PROGRESS_ROWS > report.rows // PROGRESS_ROWS:
            self.say(f"read {report.rows + n:,} rows from {name}")
        report.rows += n
        if n == 0:
            return
        if name not in self._file_names:
            self._file_names.append(name)
        file_no = self._file_names.index(name)
        users = _clean_ids(table.column(columns["user_id"]))
        items = _clean_ids(table.column(columns["item_id"]))
        user_missing = _missing(users)
        item_missing = _missing(items)
        blank = (
            user_missing & item_missing & _missing(_clean_ids(table.column(columns["timestamp"])))
        )
        report.blank_lines += int(blank.sum())
        ok = ~blank

        def drop(kind: str, mask: np.ndarray, column: str, detail: str = "") -> None:
            nonlocal ok
            hit = mask & ok
            if hit.any():
                first = int(np.flatnonzero(hit)[0])
                report.add_bad(
                    kind, int(hit.sum()), f"{name}:{unit} {lines[first]} column {column!r}{detail}"
                )
            ok &= ~mask

        drop("missing_user_id", user_missing, columns["user_id"])
        drop("missing_item_id", item_missing, columns["item_id"])
        ts, ts_ok = parse_timestamps(table.column(columns["timestamp"]))
        if not (ts_ok | ~ok).all():
            first = int(np.flatnonzero(~ts_ok & ok)[0])
            value = table.column(columns["timestamp"])[first].as_py()
            drop("bad_timestamp", ~ts_ok, columns["timestamp"], f": {value!r}")
        weights = np.ones(n, dtype=np.float32)
        if "weight" in columns:
            weights, w_ok = _parse_floats(table.column(columns["weight"]), default=1.0)
            drop("bad_weight", ~w_ok, columns["weight"])
        events = np.full(n, -1, dtype=np.int32)
        if "event_type" in columns:
            events = _encode(_clean_ids(table.column(columns["event_type"])), self.event_codes)
        keep = ok.copy()
        if self.options.min_weight is not None:
            keep &= weights >= self.options.min_weight
        if self.options.event_types is not None:
            allowed = np.array(
                [self.event_codes.get(e, -2) for e in self.options.event_types], dtype=np.int32
            )
            keep &= np.isin(events, allowed)
        report.filtered += int((ok & ~keep).sum())
        if not keep.any():
            return
        index = np.flatnonzero(keep)
        taken = pa.array(index)
        self._parts["users"].append(_encode(users.take(taken), self.user_codes))
        self._parts["items"].append(_encode(items.take(taken), self.item_codes))
        self._parts["ts"].append(ts[index])
        self._parts["weights"].append(weights[index])
        self._parts["events"].append(events[index])
        self._parts["lines"].append(lines[index])
        self._parts["files"].append(np.full(index.size, file_no, dtype=np.int32))
        for column in self.options.context_columns:
            values = _clean_ids(table.column(columns[f"context:{column}"])).take(taken)
            self._ctx_parts[column].append(_encode(values, self.context_codes[column], missing=-1))

    def finish(self, unit: str = "line") -> Interactions:
        report = self.report

        def cat(key: str, dtype: type[np.generic]) -> np.ndarray:
            parts = self._parts[key]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        users, items = cat("users", np.int32), cat("items", np.int32)
        ts, weights, events = (
            cat("ts", np.int64),
            cat("weights", np.float32),
            cat("events", np.int32),
        )
        lines, files = cat("lines", np.int64), cat("files", np.int32)
        context = {
            c: np.concatenate(p) if p else np.zeros(0, dtype=np.int32)
            for c, p in self._ctx_parts.items()
        }
        if users.size:
            # Exact repeats (same user, item, time and event type) are logging artefacts.
            order = np.lexsort((np.arange(users.size), events, ts, items, users))
            dup_sorted = np.zeros(users.size, dtype=bool)
            dup_sorted[1:] = (
                (users[order][1:] == users[order][:-1])
                & (items[order][1:] == items[order][:-1])
                & (ts[order][1:] == ts[order][:-1])
                & (events[order][1:] == events[order][:-1])
            )
            dup = np.zeros(users.size, dtype=bool)
            dup[order] = dup_sorted
            if dup.any():
                first = int(np.flatnonzero(dup)[0])
                where = f"{self._file_names[files[first]]}:{unit} {lines[first]}"
                report.add_bad("duplicate", int(dup.sum()), f"{where} repeats an earlier row")
                keep = ~dup
                users, items, ts, weights = users[keep], items[keep], ts[keep], weights[keep]
                context = {c: v[keep] for c, v in context.items()}
        report.kept = int(users.size)
        return Interactions(
            user_ids=list(self.user_codes),
            item_ids=list(self.item_codes),
            users=users,
            items=items,
            timestamps=ts,
            weights=weights,
            context={
                c: (context[c], list(self.context_codes[c])) for c in self.options.context_columns
            },
        )


def _clean_ids(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    return pc.utf8_trim_whitespace(array)


def _missing(array: pa.Array) -> np.ndarray:
    return np.asarray(
        pc.fill_null(pc.equal(array, ""), True).to_numpy(zero_copy_only=False), dtype=bool
    )


def _encode(array: pa.Array, codes: dict[str, int], missing: int | None = None) -> np.ndarray:
    """Maps strings to stable integer codes (first seen first), one dictionary pass per block."""
    encoded = pc.dictionary_encode(array)
    dictionary = encoded.dictionary.to_pylist()
    lookup = np.empty(len(dictionary) + 1, dtype=np.int32)
    for i, value in enumerate(dictionary):
        if missing is not None and not value:
            lookup[i] = missing
        else:
            lookup[i] = codes.setdefault(value, len(codes))
    lookup[-1] = -1 if missing is None else missing
    indices = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    return lookup[indices]


_NUMERIC_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)
# Epoch numbers above this are milliseconds (as seconds they would be after the year 5000).
_MS_THRESHOLD = 1e11


def parse_timestamps(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 seconds, valid mask) from epoch seconds/milliseconds, ISO 8601 text or timestamps."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        # safe=False: dropping sub-second precision is intended.
        as_seconds = pc.cast(
            array, pa.timestamp("s", tz=getattr(array.type, "tz", None)), safe=False
        )
        seconds = pc.cast(as_seconds, pa.int64())
        return np.asarray(
            seconds.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
        ), valid
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        values = np.asarray(
            pc.cast(array, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        )
        return _epoch_seconds(values)
    text = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
    numeric = np.asarray(
        pc.fill_null(pc.match_substring_regex(text, _NUMERIC_RE), False).to_numpy(
            zero_copy_only=False
        )
    )
    out = np.zeros(n, dtype=np.int64)
    valid = np.zeros(n, dtype=bool)
    if numeric.any():
        as_float = pc.cast(pc.if_else(pa.array(numeric), text, "0"), pa.float64()).to_numpy(
            zero_copy_only=False
        )
        seconds, ok = _epoch_seconds(np.where(numeric, as_float, np.nan))
        out[ok], valid[ok] = seconds[ok], True
    if not (numeric | valid).all():
        iso = pc.replace_substring_regex(text, r"(\d\d:\d\d:\d\d)\.\d+", r"\1")
        iso = pc.replace_substring_regex(iso, r"Z$", "+0000")
        iso = pc.replace_substring_regex(iso, r"([+-]\d\d):(\d\d)$", r"\1\2")
        for fmt in _TIME_FORMATS:
            todo = ~valid & ~numeric
            if not todo.any():
                break
            parsed = pc.strptime(iso, format=fmt, unit="s", error_is_null=True)
            values = pc.cast(parsed, pa.int64())
            got = np.asarray(values.is_valid().to_numpy(zero_copy_only=False)) & todo
            out[got] = np.asarray(values.fill_null(0).to_numpy(zero_copy_only=False))[got]
            valid |= got
    return out, valid


def _epoch_seconds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(values) & (values >= 0)
    seconds = np.where(values > _MS_THRESHOLD, values / 1000.0, values)
    seconds = np.where(ok, np.floor(np.nan_to_num(seconds)), 0.0)
    return seconds.astype(np.int64), ok


def _parse_floats(
    column: pa.ChunkedArray | pa.Array, *, default: float
) -> tuple[np.ndarray, np.ndarray]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        values = np.asarray(
            pc.cast(array, pa.float64()).fill_null(default).to_numpy(zero_copy_only=False)
        )
        return values.astype(np.float32), np.isfinite(values)
    text = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
    empty = np.asarray(pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False))
    numeric = np.asarray(
        pc.fill_null(pc.match_substring_regex(text, _NUMERIC_RE), False).to_numpy(
            zero_copy_only=False
        )
    )
    parsed = pc.cast(pc.if_else(pa.array(numeric), text, "0"), pa.float64()).to_numpy(
        zero_copy_only=False
    )
    values = np.where(numeric, parsed, default)
    return values.astype(np.float32), numeric | empty


def _check_quality(report: LoadReport, options: LoadOptions, name: str) -> None:
    considered = report.rows - report.blank_lines
    if report.kept == 0:
        if report.bad:
            kind = max(report.bad, key=lambda k: report.bad[k])
            raise DataError(
                f"no usable rows: every row was dropped, e.g. {kind}: {report.examples[kind]}",
                file=name,
            )
        raise DataError(
            "no usable rows" + (" after filtering" if report.filtered else ""), file=name
        )
    if considered and report.bad_total / considered > options.max_bad_fraction:
        kind = max(report.bad, key=lambda k: report.bad[k])
        raise DataError(
            f"{report.bad_total:,} of {considered:,} rows are unusable (more than "
            f"{options.max_bad_fraction:.0%}; raise --max-bad-fraction to accept); most are {kind}, "
            f"first at {report.examples[kind]}",
            file=name,
        )


def load_event_log(
    path: str | Path, options: LoadOptions = LoadOptions(), say: Callable[[str], None] | None = None
) -> tuple[Interactions, LoadReport]:
    """User logs: CSV/TSV (optionally compressed) with a header, or Parquet.

    Columns: user_id, item_id, timestamp (epoch seconds/ms or ISO 8601) + optional event_type,
    weight, and the context columns named in `options`.
    """
    path = Path(path)
    report = LoadReport(files=[str(path)])
    acc = _EventAccumulator(report, options, say)
    if _is_parquet(path):
        for table, rows, columns in _iter_parquet(path, options.context_columns):
            acc.add(str(path), table, rows, columns, unit="row")
        interactions = acc.finish(unit="row")
    else:
        delimiter = "\t" if ".tsv" in path.suffixes else ","
        with _open_binary(path) as stream:
            header = _read_header(stream, str(path), delimiter)
            if len(header) == 1 and delimiter == ",":
                raise DataError(
                    f"header has one column ({header[0]!r}): is the file comma-separated?",
                    file=path,
                    line=1,
                )
            columns = _resolve_columns(header, str(path), options.context_columns)
            for block in _iter_text_blocks(
                stream,
                str(path),
                columns=_dedupe(header),
                delimiter=delimiter,
                first_line=2,
                report=report,
                quote=True,
                keep=list(columns.values()),
            ):
                acc.add(str(path), block.table, block.lines, columns)
        interactions = acc.finish()
    _check_quality(report, options, str(path))
    return interactions, report


def _dedupe(header: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in header:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}.{count}")
    return out


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def _iter_parquet(
    path: Path, context: Sequence[str]
) -> Iterator[tuple[pa.Table, np.ndarray, dict[str, str]]]:
    try:
        parquet = pq.ParquetFile(str(path))
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", file=path) from None
    columns = _resolve_columns(parquet.schema_arrow.names, str(path), context, unit="row")
    first_row = 1
    try:
        for batch in parquet.iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=list(dict.fromkeys(columns.values()))
        ):
            table = pa.Table.from_batches([batch])
            rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
            first_row += table.num_rows
            yield table, rows, columns
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"cannot read Parquet data: {exc}", file=path, line=first_row, unit="row"
        ) from None


# ----------------------------------------------------------------------- feature tables


def _features_from_table(
    table: pa.Table,
    id_column: str,
    name: str,
    multi: Sequence[str] = (),
    multi_separator: str = MULTI_VALUE_SEPARATOR,
) -> dict[str, dict[str, RawValue]]:
    ids = _clean_ids(table.column(id_column)).to_pylist()
    out: dict[str, dict[str, RawValue]] = {}
    feature_columns = [c for c in table.column_names if c != id_column]
    values = {c: _clean_ids(table.column(c)).to_pylist() for c in feature_columns}
    multi_cols = set(multi) | {
        c
        for c in feature_columns
        if multi_separator != " " and any(multi_separator in (v or "") for v in values[c])
    }
    for row, entity in enumerate(ids):
        if not entity:
            continue
        features: dict[str, RawValue] = {}
        for column in feature_columns:
            value = values[column][row]
            if not value:
                continue
            if column in multi_cols:
                features[column] = [v for v in value.split(multi_separator) if v]
            else:
                features[column] = value
        out.setdefault(entity, features)
    if not out:
        raise DataError("feature table has no rows with an id", file=name)
    return out


def load_feature_table(
    path: str | Path, kind: Literal["item", "user"]
) -> dict[str, dict[str, RawValue]]:
    """CSV/Parquet: an id column (item_id/user_id or the first column) + one column per feature;
    values with '|' are multi-valued (e.g. genres)."""
    path = Path(path)
    id_aliases = COLUMN_ALIASES[f"{kind}_id"]
    if _is_parquet(path):
        try:
            table = pq.read_table(str(path))
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", file=path) from None
        header = table.column_names
    else:
        delimiter = "\t" if ".tsv" in path.suffixes else ","
        report = LoadReport(files=[str(path)])
        with _open_binary(path) as stream:
            header = _dedupe(_read_header(stream, str(path), delimiter))
            blocks = list(
                _iter_text_blocks(
                    stream,
                    str(path),
                    columns=header,
                    delimiter=delimiter,
                    first_line=2,
                    report=report,
                    quote=True,
                )
            )
        if report.bad:
            raise DataError(f"malformed row: {report.examples['malformed_row']}", file=path)
        table = (
            pa.concat_tables([b.table for b in blocks])
            if blocks
            else pa.table({h: pa.array([], pa.string()) for h in header})
        )
    lowered = {h.lower(): h for h in header}
    id_column = next((lowered[a] for a in id_aliases if a in lowered), header[0])
    return _features_from_table(table, id_column, str(path))


# --------------------------------------------------------------------------- RecBole atomic


def _recbole_header(stream: IO[bytes], name: str) -> tuple[list[str], dict[str, str]]:
    header = _read_header(stream, name, "\t")
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
    return _dedupe(names), types


def _read_recbole_events(
    stream: IO[bytes],
    name: str,
    options: LoadOptions,
    report: LoadReport,
    say: Callable[[str], None] | None = None,
) -> Interactions:
    names, _types = _recbole_header(stream, name)
    acc = _EventAccumulator(report, options, say)
    columns = _resolve_columns_recbole(names, name, options)
    if columns["timestamp"] == "__row__":
        report.notes.append(f"{name} has no timestamp field: file order is used as time order")
    for block in _iter_text_blocks(
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
        columns = _resolve_columns([*names, "timestamp"], name, options.context_columns)
        columns["timestamp"] = "__row__"
        return columns
    return _resolve_columns(names, name, options.context_columns)


def _read_recbole_features(
    stream: IO[bytes], name: str, id_field: str
) -> dict[str, dict[str, RawValue]]:
    names, types = _recbole_header(stream, name)
    if id_field not in names:
        raise DataError(
            f"has no {id_field} field (header: {names})", file=name, line=1, column=id_field
        )
    report = LoadReport(files=[name])
    blocks = list(
        _iter_text_blocks(
            stream, name, columns=names, delimiter="\t", first_line=2, report=report, quote=False
        )
    )
    if report.bad:
        raise DataError(f"malformed row: {report.examples['malformed_row']}", file=name)
    table = pa.concat_tables([b.table for b in blocks])
    multi = [n for n in names if types.get(n, "").endswith("_seq")]
    return _features_from_table(table, id_field, name, multi=multi, multi_separator=" ")


def load_recbole(
    path: str | Path, options: LoadOptions = LoadOptions(), say: Callable[[str], None] | None = None
) -> Dataset:
    """A RecBole atomic dataset: `<dir>/<name>.inter` (+ optional .item, .user), or the .inter path."""
    path = Path(path)
    inter = path if path.suffix == ".inter" else _single(path, "*.inter")
    report = LoadReport(files=[str(inter)])
    with _open_binary(inter) as stream:
        interactions = _read_recbole_events(stream, str(inter), options, report, say)
    _check_quality(report, options, str(inter))
    item_path, user_path = inter.with_suffix(".item"), inter.with_suffix(".user")
    items: dict[str, dict[str, RawValue]] = {}
    users: dict[str, dict[str, RawValue]] = {}
    if item_path.is_file():
        with _open_binary(item_path) as stream:
            items = _read_recbole_features(stream, str(item_path), "item_id")
    if user_path.is_file():
        with _open_binary(user_path) as stream:
            users = _read_recbole_features(stream, str(user_path), "user_id")
    return Dataset(inter.stem, interactions, items, _single_valued(users), report)


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


def _single_valued(features: Mapping[str, Mapping[str, RawValue]]) -> dict[str, dict[str, str]]:
    """User features are single values (they travel as a Redis hash); lists are joined with '|'."""
    return {
        entity: {
            k: v if isinstance(v, str) else MULTI_VALUE_SEPARATOR.join(v)
            for k, v in row.items()
            if v is not None
        }
        for entity, row in features.items()
    }


# ------------------------------------------------------------------------------ MovieLens


def find_movielens_wheel(dest: str | Path) -> Path | None:
    matches = sorted(Path(dest).glob(RECBOLE_WHEEL_GLOB))
    return matches[-1] if matches else None


def fetch_movielens(dest: str | Path = "data", *, say: Callable[[str], None] = print) -> Path:
    """Ensures the recbole wheel (which carries MovieLens-100K) is in `dest`; idempotent."""
    dest = Path(dest)
    wheel = find_movielens_wheel(dest)
    if wheel is None:
        dest.mkdir(parents=True, exist_ok=True)
        say(f"downloading {RECBOLE_REQUIREMENT} (MovieLens-100K is inside) into {dest}/")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            RECBOLE_REQUIREMENT,
            "-d",
            str(dest),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = find_movielens_wheel(dest)
        if result.returncode != 0 or wheel is None:
            raise DataError(
                f"`{' '.join(command)}` failed: {result.stderr.strip() or result.stdout.strip()}"
            )
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise DataError("is not a valid wheel (delete it and fetch again)", file=wheel) from None
    for ext in ("inter", "item", "user"):
        if ML100K_MEMBER.format(ext) not in names:
            raise DataError(f"does not contain {ML100K_MEMBER.format(ext)}", file=wheel)
    return wheel


def load_movielens_100k(
    data_dir: str | Path = "data", options: LoadOptions = LoadOptions()
) -> Dataset:
    """MovieLens-100K read straight from the recbole wheel (fetched on first use)."""
    wheel = fetch_movielens(data_dir, say=lambda msg: print(msg, file=sys.stderr))
    with zipfile.ZipFile(wheel) as archive:

        def member(ext: str) -> tuple[IO[bytes], str]:
            name = ML100K_MEMBER.format(ext)
            return archive.open(name), f"{wheel.name}!{name}"

        stream, name = member("inter")
        report = LoadReport(files=[name])
        with stream:
            interactions = _read_recbole_events(stream, name, options, report)
        _check_quality(report, options, name)
        stream, name = member("item")
        with stream:
            items = _read_recbole_features(stream, name, "item_id")
        stream, name = member("user")
        with stream:
            users = _read_recbole_features(stream, name, "user_id")
    return Dataset("ml-100k", interactions, items, _single_valued(users), report)


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
    path: str | Path, options: LoadOptions = LoadOptions(), say: Callable[[str], None] | None = None
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
    acc = _EventAccumulator(report, options, say)
    base = {
        "user_id": "user_id",
        "item_id": "item_id",
        "timestamp": "timestamp",
        "weight": "rating",
    }
    with _open_binary(path) as stream:
        if path.name.startswith("ratings.csv") or path.suffix == ".csv":
            header = _read_header(stream, str(path), ",")
            columns = _resolve_columns(header, str(path), ())
            blocks = _iter_text_blocks(
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
            blocks = _iter_text_blocks(
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
            blocks = _iter_text_blocks(
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
    _check_quality(report, options, str(path))
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


# ------------------------------------------------------------------------------ dispatcher


def load_dataset(
    data: str | Path | None,
    fmt: str | None = None,
    options: LoadOptions = LoadOptions(),
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
        dataset.user_features = _single_valued(load_feature_table(user_features, "user"))
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
    return "parquet" if _is_parquet(path) else "csv"


SYNTHETIC_MANIFEST = "synthetic.json"


def load_synthetic_dir(
    path: str | Path, options: LoadOptions = LoadOptions(), say: Callable[[str], None] | None = None
) -> Dataset:
    """A directory written by `python -m recserve.training synth`."""
    path = Path(path)
    manifest_path = path / SYNTHETIC_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"not a synthetic dataset directory: {exc}", file=manifest_path) from None
    context = tuple(
        c for c in manifest.get("context_columns", []) if c not in options.context_columns
    )
    merged = LoadOptions(
        max_bad_fraction=options.max_bad_fraction,
        min_weight=options.min_weight,
        event_types=options.event_types,
        context_columns=(*options.context_columns, *context),
    )
    interactions, report = load_event_log(path / files["events"], merged, say)
    items = load_feature_table(path / files["items"], "item")
    users = _single_valued(load_feature_table(path / files["users"], "user"))
    return Dataset(f"synthetic-{manifest.get('seed', 0)}", interactions, items, users, report)


# ------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recserve.training.datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser(
        "fetch-movielens", help="get MovieLens-100K (inside the recbole wheel) into DEST"
    )
    fetch.add_argument("--dest", default="data")
    args = parser.parse_args(argv)
    try:
        wheel = fetch_movielens(args.dest)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"MovieLens-100K: {wheel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
