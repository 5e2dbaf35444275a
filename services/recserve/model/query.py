"""How a user's recent item vectors become one ANN query vector (pure numpy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class QueryConfig:
    """Exponentially decayed mean of the last `history_length` input vectors.

    The newest item has weight 1, the one before `decay`, then `decay**2`, ...
    """

    history_length: int = 5
    decay: float = 0.7

    def __post_init__(self) -> None:
        if self.history_length < 1:
            raise ValueError(f"history_length must be >= 1, got {self.history_length}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryConfig:
        return cls(history_length=int(data["history_length"]), decay=float(data["decay"]))


def query_vector(history: np.ndarray, config: QueryConfig) -> np.ndarray:
    """history: float32 [m, d], oldest first. Returns float32 [d]."""
    history = np.asarray(history, dtype=np.float32)
    if history.ndim != 2:
        raise ValueError(f"history must be 2-D [m, d], got shape {history.shape}")
    if history.shape[0] == 0:
        raise ValueError("history is empty: a query vector needs at least one item vector")
    recent = history[-config.history_length :].astype(np.float64)
    ages = np.arange(recent.shape[0] - 1, -1, -1, dtype=np.float64)
    weights = np.power(config.decay, ages)
    # A weighted mean (not sum) keeps ANN scores on one scale whatever the history length,
    # which the ranker's ann_score feature relies on.
    vector = (weights[:, None] * recent).sum(axis=0) / weights.sum()
    return vector.astype(np.float32)
