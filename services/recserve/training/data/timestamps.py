"""Timestamps in every accepted form to int64 epoch seconds: epoch seconds or milliseconds
(numbers or text), ISO 8601 text with optional fraction and zone, Arrow timestamp/date types."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A plain or scientific-notation number (weights are parsed with it too).
NUMERIC_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
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
        pc.fill_null(pc.match_substring_regex(text, NUMERIC_RE), False).to_numpy(
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
