from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from recserve.model import load_bundle

USERS = [
    {"age": "19", "gender": "F", "device": "ios"},
    {"age": "44", "gender": "M"},
    {},
    {"age": "nonsense", "gender": "X", "extra": "ignored"},
]


def test_probabilities_match_the_linear_model(bundle_path: Path) -> None:
    ranker = load_bundle(bundle_path, parts={"ranker"}).ranker
    candidates = np.array([4, 8, 15, 16, 23, 42])
    ann = np.linspace(1.0, 0.2, 6).astype(np.float32)
    matrix = ranker.encoder.encode(USERS[0], candidates, ann)
    expected = expit(matrix.toarray() @ ranker.weights + ranker.intercept)
    got = ranker.score(USERS[0], candidates, ann)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_batch_is_identical_to_per_user_calls(bundle_path: Path) -> None:
    ranker = load_bundle(bundle_path, parts={"ranker"}).ranker
    rng = np.random.default_rng(3)
    candidates = [rng.choice(300, size=n, replace=False) for n in (50, 1, 0, 17)]
    ann = [rng.standard_normal(c.size).astype(np.float32) for c in candidates]
    batch = ranker.score_batch(USERS, candidates, ann)
    for user, cand, scores, got in zip(USERS, candidates, ann, batch, strict=True):
        np.testing.assert_array_equal(got, ranker.score(user, cand, scores))
    assert ranker.score_batch([], [], []) == []
    with pytest.raises(ValueError):
        ranker.score_batch(USERS, candidates[:2], ann)
