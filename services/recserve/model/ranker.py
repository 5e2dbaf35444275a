"""Logistic-regression ranker stored as plain arrays + a JSON feature spec (no pickle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse
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

    def _probabilities(self, matrix: sparse.csr_matrix) -> np.ndarray:
        # CSR mat-vec sums each row's entries in stored order, so a row gives the same number
        # whether it is scored alone or inside a batch.
        logits = matrix @ self.weights + self.intercept
        return np.asarray(expit(logits), dtype=np.float32)

    def score(
        self, user_features: Mapping[str, str], candidates: np.ndarray, ann_scores: np.ndarray
    ) -> np.ndarray:
        """float32 probabilities, one per candidate, in the candidates' order."""
        return self._probabilities(self.encoder.encode(user_features, candidates, ann_scores))

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
        blocks = [
            self.encoder.encode(f, c, a)
            for f, c, a in zip(user_features, candidates, ann_scores, strict=True)
        ]
        probabilities = self._probabilities(sparse.vstack(blocks, format="csr"))
        bounds = np.cumsum([b.shape[0] for b in blocks])[:-1]
        return list(np.split(probabilities, bounds))
