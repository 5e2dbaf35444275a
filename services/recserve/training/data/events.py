"""Validation and coding shared by every event reader: column names and their aliases, the
accumulator that drops bad rows (counted by kind, with the first file:line) and codes ids, and
the final check that enough rows are usable."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recserve.training.data.model import DataError, Interactions, LoadOptions, LoadReport
from recserve.training.data.timestamps import NUMERIC_RE, parse_timestamps

PROGRESS_ROWS = 5_000_000
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userid", "user"),
    "item_id": ("item_id", "itemid", "movieid", "movie_id", "item"),
    "timestamp": ("timestamp", "time", "ts", "event_time", "datetime"),
    "event_type": ("event_type", "event", "type"),
    "weight": ("weight", "rating", "value"),
}


def resolve_columns(
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


class EventAccumulator:
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
        users = clean_ids(table.column(columns["user_id"]))
        items = clean_ids(table.column(columns["item_id"]))
        user_missing = _missing(users)
        item_missing = _missing(items)
        blank = (
            user_missing & item_missing & _missing(clean_ids(table.column(columns["timestamp"])))
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
            events = _encode(clean_ids(table.column(columns["event_type"])), self.event_codes)
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
            values = clean_ids(table.column(columns[f"context:{column}"])).take(taken)
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
        names = {code: name for name, code in self.event_codes.items()}
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
            # Dropped repeats duplicate a kept event, so they remove no type.
            event_types=sorted({names.get(int(code), "") for code in np.unique(events)}),
        )


def clean_ids(column: pa.ChunkedArray | pa.Array) -> pa.Array:
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
        pc.fill_null(pc.match_substring_regex(text, NUMERIC_RE), False).to_numpy(
            zero_copy_only=False
        )
    )
    parsed = pc.cast(pc.if_else(pa.array(numeric), text, "0"), pa.float64()).to_numpy(
        zero_copy_only=False
    )
    values = np.where(numeric, parsed, default)
    return values.astype(np.float32), numeric | empty


def check_quality(report: LoadReport, options: LoadOptions, name: str) -> None:
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
