"""Item and user feature tables: CSV/Parquet with an id column and one column per feature."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from recserve.model.features import MULTI_VALUE_SEPARATOR, RawValue
from recserve.training.data.eventlog import is_parquet
from recserve.training.data.events import COLUMN_ALIASES, clean_ids
from recserve.training.data.model import DataError, LoadReport
from recserve.training.data.textio import dedupe_names, iter_text_blocks, open_binary, read_header


def features_from_table(
    table: pa.Table,
    id_column: str,
    name: str,
    multi: Sequence[str] = (),
    multi_separator: str = MULTI_VALUE_SEPARATOR,
) -> dict[str, dict[str, RawValue]]:
    ids = clean_ids(table.column(id_column)).to_pylist()
    out: dict[str, dict[str, RawValue]] = {}
    feature_columns = [c for c in table.column_names if c != id_column]
    values = {c: clean_ids(table.column(c)).to_pylist() for c in feature_columns}
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
    if is_parquet(path):
        try:
            table = pq.read_table(str(path))
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", file=path) from None
        header = table.column_names
    else:
        delimiter = "\t" if ".tsv" in path.suffixes else ","
        report = LoadReport(files=[str(path)])
        with open_binary(path) as stream:
            header = dedupe_names(read_header(stream, str(path), delimiter))
            blocks = list(
                iter_text_blocks(
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
    return features_from_table(table, id_column, str(path))


def single_valued(features: Mapping[str, Mapping[str, RawValue]]) -> dict[str, dict[str, str]]:
    """User features are single values (they travel as a Redis hash); lists are joined with '|'."""
    return {
        entity: {
            k: v if isinstance(v, str) else MULTI_VALUE_SEPARATOR.join(v)
            for k, v in row.items()
            if v is not None
        }
        for entity, row in features.items()
    }
