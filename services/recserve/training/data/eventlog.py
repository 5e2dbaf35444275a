"""Users' own event logs: CSV/TSV (optionally compressed) with a header, or Parquet."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recserve.training.data.events import EventAccumulator, check_quality, resolve_columns
from recserve.training.data.model import (
    DEFAULT_LOAD_OPTIONS,
    DataError,
    Interactions,
    LoadOptions,
    LoadReport,
)
from recserve.training.data.textio import dedupe_names, iter_text_blocks, open_binary, read_header

PARQUET_BATCH_ROWS = 1 << 20


def load_event_log(
    path: str | Path,
    options: LoadOptions = DEFAULT_LOAD_OPTIONS,
    say: Callable[[str], None] | None = None,
) -> tuple[Interactions, LoadReport]:
    """User logs: CSV/TSV (optionally compressed) with a header, or Parquet.

    Columns: user_id, item_id, timestamp (epoch seconds/ms or ISO 8601) + optional event_type,
    weight, and the context columns named in `options`.
    """
    path = Path(path)
    report = LoadReport(files=[str(path)])
    acc = EventAccumulator(report, options, say)
    if is_parquet(path):
        for table, rows, columns in _iter_parquet(path, options.context_columns):
            acc.add(str(path), table, rows, columns, unit="row")
        interactions = acc.finish(unit="row")
    else:
        delimiter = "\t" if ".tsv" in path.suffixes else ","
        with open_binary(path) as stream:
            header = read_header(stream, str(path), delimiter)
            if len(header) == 1 and delimiter == ",":
                raise DataError(
                    f"header has one column ({header[0]!r}): is the file comma-separated?",
                    file=path,
                    line=1,
                )
            columns = resolve_columns(header, str(path), options.context_columns)
            for block in iter_text_blocks(
                stream,
                str(path),
                columns=dedupe_names(header),
                delimiter=delimiter,
                first_line=2,
                report=report,
                quote=True,
                keep=list(columns.values()),
            ):
                acc.add(str(path), block.table, block.lines, columns)
        interactions = acc.finish()
    check_quality(report, options, str(path))
    return interactions, report


def is_parquet(path: Path) -> bool:
    """By extension (.parquet, .pq), else by the file's PAR1 magic bytes."""
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
    columns = resolve_columns(parquet.schema_arrow.names, str(path), context, unit="row")
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
