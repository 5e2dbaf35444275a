"""Training configuration and progress output (light: no gensim/sklearn/ScaNN imports, so the
CLI starts fast for publish and gc)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recserve.model.query import QueryConfig
from recserve.training.data import LoadOptions
from recserve.training.synthetic import SyntheticSpec


@dataclass(frozen=True)
class Word2VecParams:
    """Defaults tuned on the MovieLens-100K validation split (docs/training.md)."""

    vector_size: int = 64
    window: int = 3
    negative: int = 5
    ns_exponent: float = 0.0
    sample: float = 0.0
    epochs: int = 20
    min_count: int = 1
    shrink_windows: bool = True
    alpha: float = 0.025
    min_alpha: float = 0.0001
    seed: int = 42
    workers: int = 0  # 0 = every core; 1 = bit-for-bit reproducible

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    bundles: Path = Path("bundles")
    data: str | None = None
    fmt: str | None = None
    data_dir: Path = Path("data")
    item_features: str | None = None
    user_features: str | None = None
    # Redis URL of the live catalog: its attributes become item features and its unavailable
    # items leave the popular list (`recserve.training.catalog`). Not in `params()`: a URL may
    # carry a password.
    catalog_redis: str | None = None
    load: LoadOptions = field(default_factory=LoadOptions)
    w2v: Word2VecParams = field(default_factory=Word2VecParams)
    session_gap_seconds: float = 0.0
    query: QueryConfig = field(default_factory=QueryConfig)
    scoring: str = "auto"  # auto | output | input
    num_candidates: int = 100
    ranker_c: float = 0.1
    ranker_positive_weight: float = 1.0
    cross_value: float = 0.03
    token_value: float = 0.1
    hash_bits: int = 18
    ann_target_recall: float = 0.95
    eval_users: int = 20_000
    seed: int = 42
    # --format synthetic without --data: generate this dataset first (seeded by `seed`).
    synthetic: SyntheticSpec | None = None

    def params(self) -> dict[str, Any]:
        return {
            "word2vec": self.w2v.to_dict(),
            "session_gap_seconds": self.session_gap_seconds,
            "query": self.query.to_dict(),
            "scoring": self.scoring,
            "num_candidates": self.num_candidates,
            "ranker_c": self.ranker_c,
            "ranker_positive_weight": self.ranker_positive_weight,
            "cross_value": self.cross_value,
            "token_value": self.token_value,
            "hash_bits": self.hash_bits,
            "ann_target_recall": self.ann_target_recall,
            "eval_users": self.eval_users,
            "seed": self.seed,
            "synthetic": asdict(self.synthetic) if self.synthetic else None,
            "load": {
                "max_bad_fraction": self.load.max_bad_fraction,
                "min_weight": self.load.min_weight,
                "event_types": sorted(self.load.event_types) if self.load.event_types else None,
                "context_columns": list(self.load.context_columns),
            },
        }


class Progress:
    """Timestamped progress lines on stderr (stdout carries the results)."""

    def __init__(self, say: Callable[[str], None] | None = None):
        self.started = time.perf_counter()
        self._say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.timings: dict[str, float] = {}
        self._stage_start = self.started

    def __call__(self, message: str) -> None:
        self._say(f"[{time.perf_counter() - self.started:6.1f}s] {message}")

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._stage_start, 3)
        self._stage_start = now
