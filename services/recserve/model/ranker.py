"""Logistic-regression ranker stored as plain arrays + a JSON feature spec (no pickle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import expit

from recserve.model.features import FeatureEncoder

_NO_HISTORY = np.zeros(0, dtype=np.int64)


class Ranker:
    """P(next item | user, history, candidate) = sigmoid(features . weights + intercept)."""

    def __init__(self, encoder: FeatureEncoder, weights: np.ndarray, intercept: float):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (encoder.spec.dim,):
            raise ValueError(f"weights have shape {weights.shape}, expected ({encoder.spec.dim},)")
        if not np.isfinite(weights).all() or not np.isfinite(intercept):
            raise ValueError("ranker weights contain NaN or infinite values")
        self.encoder = encoder
        self.weights = weights
        self.intercept = float(intercept)

    def score(
        self,
        user_features: Mapping[str, str],
        candidates: np.ndarray,
        ann_scores: np.ndarray,
        history: np.ndarray = _NO_HISTORY,
        now: float | None = None,
    ) -> np.ndarray:
        """float32 probabilities, one per candidate, in the candidates' order; `history` is the
        user's item indices, oldest first, `now` the request time (epoch seconds)."""
        logits = self.encoder.logits(
            user_features, candidates, ann_scores, self.weights, history=history, now=now
        )
        return np.asarray(expit(logits + self.intercept), dtype=np.float32)

    def score_batch(
        self,
        user_features: Sequence[Mapping[str, str]],
        candidates: Sequence[np.ndarray],
        ann_scores: Sequence[np.ndarray],
        histories: Sequence[np.ndarray] | None = None,
        times: Sequence[float | None] | None = None,
    ) -> list[np.ndarray]:
        """Several users; identical numbers to calling `score` per user."""
        n = len(user_features)
        histories = [_NO_HISTORY] * n if histories is None else histories
        times = [None] * n if times is None else times
        if not n == len(candidates) == len(ann_scores) == len(histories) == len(times):
            raise ValueError(
                "user_features, candidates, ann_scores, histories and times must have the same length"
            )
        # Each user's rows are computed on their own, so the numbers equal per-user calls.
        return [
            self.score(f, c, a, h, t)
            for f, c, a, h, t in zip(
                user_features, candidates, ann_scores, histories, times, strict=True
            )
        ]
