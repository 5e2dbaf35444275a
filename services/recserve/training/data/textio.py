"""Delimited text read block by block with exact line numbers: the CSV/TSV layer shared by
every text reader (plain or compressed files, the header line, repeated column names)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from recserve.training.data.model import DataError, LoadReport

BLOCK_BYTES = 16 << 20


@dataclass
class TextBlock:
    table: pa.Table
    lines: np.ndarray  # int64 physical line number of each row


def iter_text_blocks(
    stream: IO[bytes],
    name: str,
    *,
    columns: Sequence[str],
    delimiter: str,
    first_line: int,
    report: LoadReport,
    quote: bool,
    keep: Sequence[str] | None = None,
) -> Iterator[TextBlock]:
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
        yield TextBlock(table, numbers + line_offset)
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


def open_binary(path: Path) -> IO[bytes]:
    """Plain or compressed (.gz, .bz2, .zst by extension) file as a binary stream."""
    if not path.is_file():
        raise DataError("file not found", file=path)
    stream: IO[bytes] = pa.input_stream(str(path), compression="detect")
    return stream


def read_header(stream: IO[bytes], name: str, delimiter: str) -> list[str]:
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


def dedupe_names(header: Sequence[str]) -> list[str]:
    """Repeated column names get .1, .2, … suffixes (the CSV parser needs unique names)."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}.{count}")
    return out
