from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recserve.model import QueryConfig, query_vector


def test_weighted_mean_of_recent_items_newest_heaviest() -> None:
    history = np.array([[100.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    got = query_vector(history, QueryConfig(history_length=2, decay=0.5))
    # last two items: weights 0.5 (older) and 1 (newest); the first item is outside the window
    np.testing.assert_allclose(got, [0.5 / 1.5, 1.0 / 1.5], rtol=1e-6)
    assert got.dtype == np.float32


def test_decay_one_is_plain_mean() -> None:
    history = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(query_vector(history, QueryConfig(10, 1.0)), history.mean(axis=0))


def test_empty_history_and_bad_config_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        query_vector(np.zeros((0, 4), dtype=np.float32), QueryConfig())
    with pytest.raises(ValueError):
        QueryConfig(history_length=0)
    with pytest.raises(ValueError):
        QueryConfig(decay=0.0)


def test_config_round_trip() -> None:
    config = QueryConfig(history_length=7, decay=0.65)
    assert QueryConfig.from_dict(config.to_dict()) == config


@settings(max_examples=50, deadline=None)
@given(
    m=st.integers(1, 30),
    length=st.integers(1, 40),
    decay=st.floats(0.05, 1.0),
    seed=st.integers(0, 1000),
)
def test_only_the_window_matters_and_result_is_a_convex_combination(
    m: int, length: int, decay: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    history = rng.standard_normal((m, 5)).astype(np.float32)
    config = QueryConfig(length, decay)
    got = query_vector(history, config)
    if m >= length:
        older = rng.standard_normal((3, 5)).astype(np.float32)
        np.testing.assert_allclose(
            query_vector(np.concatenate([older, history]), config), got, rtol=1e-5
        )
    window = history[-length:]
    assert np.all(got >= window.min(axis=0) - 1e-5) and np.all(got <= window.max(axis=0) + 1e-5)
