"""Logistic-regression ranker stored as plain arrays + a JSON feature spec (no pickle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import expit

from recserve.model.features import FeatureEncoder


class Ranker:
    """P(next item | user, candidate) = sigmoid(features . weights + intercept)."""

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
        self, user_features: Mapping[str, str], candidates: np.ndarray, ann_scores: np.ndarray
    ) -> np.ndarray:
        """float32 probabilities, one per candidate, in the candidates' order."""
        logits = self.encoder.logits(user_features, candidates, ann_scores, self.weights)
        return np.asarray(expit(logits + self.intercept), dtype=np.float32)

    def score_batch(
        self,
        user_features: Sequence[Mapping[str, str]],
        candidates: Sequence[np.ndarray],
        ann_scores: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """Several users in one mat-vec; identical numbers to calling `score` per user."""
        if not len(user_features) == len(candidates) == len(ann_scores):
            raise ValueError("user_features, candidates and ann_scores must have the same length")
        if not user_features:
            return []
        # Each user's rows are computed on their own, so the numbers equal per-user calls.
        return [
            self.score(f, c, a)
            for f, c, a in zip(user_features, candidates, ann_scores, strict=True)
        ]
