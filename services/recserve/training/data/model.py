"""The data model every reader produces: `Dataset` (coded `Interactions`, item and user
features, the `LoadReport` of dropped rows), the `LoadOptions` readers honour, and `DataError`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recserve.model.features import RawValue

DEFAULT_MAX_BAD_FRACTION = 0.1

# Kinds of dropped rows, in report order. blank_line is harmless and never counts as bad.
BAD_KINDS = (
    "malformed_row",
    "missing_user_id",
    "missing_item_id",
    "bad_timestamp",
    "bad_weight",
    "duplicate",
)


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
    # The event types of these events, sorted ("" for events without one); published so
    # serving uses the same types as history.
    event_types: list[str] = field(default_factory=list)

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
    # Item ids the live catalog marks unavailable (`recserve.training.catalog`): kept out of
    # the bundle's popular list.
    unavailable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LoadOptions:
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    min_weight: float | None = None
    event_types: frozenset[str] | None = None
    context_columns: tuple[str, ...] = ()


# Readers' default options (LoadOptions is frozen, so one shared instance is safe).
DEFAULT_LOAD_OPTIONS = LoadOptions()
