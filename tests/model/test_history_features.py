"""The history and popularity-dynamics features: values by hand, per-item state fit and its
round trip through the bundle."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recserve.model import FeatureEncoder, FeatureSpec, FeatureTransform, Ranker, load_bundle
from recserve.model.bundle import BundleError, write_bundle
from recserve.model.features import NUMERIC_FEATURES, ItemState
from recserve.training.ranker_training import fit_item_state

from .builders import make_contents

DAY = 86400.0
ITEMS = [
    {"genre": ["drama"]},
    {"genre": ["drama", "comedy"]},
    {"genre": ["comedy"]},
    {"genre": ["horror"]},
    {},
]


def _state() -> ItemState:
    # item 0's neighbours: 1 (0.5), 2 (0.25); item 1's: 0 (0.5), 3 (0.125); others none (5).
    neighbours = np.full((5, 2), 5, dtype=np.int32)
    similarity = np.zeros((5, 2), dtype=np.float32)
    neighbours[0], similarity[0] = [1, 2], [0.5, 0.25]
    neighbours[1], similarity[1] = [0, 3], [0.5, 0.125]
    return ItemState(
        neighbours,
        similarity,
        recent_popularity=np.array([0.0, 1.0, 3.0, 7.0, 0.0]),
        first_seen=np.array([0.0, 1.0, 3.0, 15.0, 0.0]) * DAY,
    )


def _spec(**changes: object) -> FeatureSpec:
    spec = FeatureSpec(
        hash_bits=8,
        item=(FeatureTransform("genre", multi=True),),
        numeric=NUMERIC_FEATURES,
        numeric_mean=(0.0,) * len(NUMERIC_FEATURES),
        numeric_scale=(1.0,) * len(NUMERIC_FEATURES),
        knn_history=2,
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def _column(
    encoder: FeatureEncoder,
    name: str,
    candidates: list[int],
    history: list[int],
    now: float | None = None,
) -> np.ndarray:
    raw = encoder.numeric_raw(
        np.array(candidates), np.zeros(len(candidates), np.float32), np.array(history), now
    )
    return raw[:, encoder.spec.numeric.index(name)]


def test_feature_values_by_hand() -> None:
    encoder = FeatureEncoder(_spec(), ITEMS, np.array([1, 2, 3, 4, 5]), _state())
    candidates = [2, 3, 4]
    # Last two items are 1 then 0: item 2 is a neighbour of 0 (0.25), item 3 of 1 (0.125).
    np.testing.assert_allclose(
        _column(encoder, "knn_session", candidates, [4, 1, 0]), [0.25, 0.125, 0]
    )
    np.testing.assert_allclose(_column(encoder, "knn_last", candidates, [4, 1, 0]), [0.25, 0, 0])
    # knn_history=2: item 3 (neighbour of 1 only) drops out once 1 is third from last.
    np.testing.assert_allclose(_column(encoder, "knn_session", candidates, [1, 0, 4]), [0.25, 0, 0])
    # History 0, 1: drama in 2/2 items, comedy in 1/2; candidate 2 is comedy, 1 is drama+comedy.
    np.testing.assert_allclose(
        _column(encoder, "attr_affinity", [2, 1, 3, 4], [0, 1]), [0.5, 0.75, 0.0, 0.0]
    )
    np.testing.assert_allclose(
        _column(encoder, "item_log_recent_pop", [1, 3], []), np.log1p([1, 7])
    )
    # Request at day 10: item 2 (first seen day 3) is 7 days old, item 3 (day 15) 5 days away.
    now = 10 * DAY
    np.testing.assert_allclose(_column(encoder, "item_log_age", [2, 3], [], now), np.log1p([7, 0]))
    np.testing.assert_allclose(
        _column(encoder, "item_log_until_first", [2, 3], [], now), np.log1p([0, 5])
    )
    assert not _column(encoder, "item_log_age", [2, 3], []).any()  # no request time
    assert not _column(encoder, "knn_session", candidates, []).any()
    assert not _column(encoder, "attr_affinity", candidates, []).any()


def test_history_length_token_crosses_and_caps() -> None:
    spec = _spec(history_edges=(np.log1p(2.0), np.log1p(5.0)), max_history=3)
    assert spec.user_tokens({}, 0) == ["history_length=b0"]
    assert spec.user_tokens({}, 2) == ["history_length=b1"]
    assert spec.user_tokens({}, 1000) == ["history_length=b1"]  # capped at max_history
    encoder = FeatureEncoder(spec, ITEMS, np.ones(5, dtype=np.int64), _state())
    short = encoder.encode({}, np.array([2]), np.zeros(1, np.float32), np.array([0]))
    long = encoder.encode({}, np.array([2]), np.zeros(1, np.float32), np.array([0, 1, 3, 0]))
    assert (short[:, : spec.hashed_dim] != long[:, : spec.hashed_dim]).nnz > 0


def test_only_the_last_max_history_items_are_read() -> None:
    encoder = FeatureEncoder(_spec(max_history=2), ITEMS, np.ones(5, dtype=np.int64), _state())
    assert _column(encoder, "attr_affinity", [3], [3, 0, 1])[0] == 0.0
    assert _column(encoder, "attr_affinity", [3], [0, 1, 3])[0] == pytest.approx(0.5)


def test_logits_equal_encode_with_history() -> None:
    rng = np.random.default_rng(0)
    spec = _spec(history_edges=(1.0, 2.0), user=(FeatureTransform("gender"),))
    encoder = FeatureEncoder(spec, ITEMS, np.arange(5), _state())
    weights = rng.normal(size=spec.dim)
    cand, ann, hist = np.array([2, 3, 4]), rng.normal(size=3).astype(np.float32), np.array([0, 1])
    expected = encoder.encode({"gender": "F"}, cand, ann, hist) @ weights
    np.testing.assert_allclose(
        encoder.logits({"gender": "F"}, cand, ann, weights, history=hist), expected, rtol=1e-12
    )


def test_state_is_required_and_validated() -> None:
    with pytest.raises(ValueError, match="ItemState"):
        FeatureEncoder(_spec(), ITEMS, np.ones(5, dtype=np.int64))
    with pytest.raises(ValueError, match="ordered subset"):
        FeatureSpec(numeric=("knn_last", "ann_score"), numeric_mean=(0, 0), numeric_scale=(1, 1))
    bad = _state()
    with pytest.raises(ValueError, match="outside"):
        ItemState(
            bad.neighbours + 5, bad.neighbour_similarity, bad.recent_popularity, bad.first_seen
        )
    with pytest.raises(ValueError, match="ascending"):
        ItemState(
            bad.neighbours[:, ::-1], bad.neighbour_similarity, bad.recent_popularity, bad.first_seen
        )
    encoder = FeatureEncoder(_spec(), ITEMS, np.ones(5, dtype=np.int64), _state())
    with pytest.raises(ValueError, match="history index"):
        encoder.encode({}, np.array([1]), np.zeros(1, np.float32), np.array([5]))


def test_fit_item_state() -> None:
    # users 0, 1 take items 0 and 1; user 2 takes 1 and 2; item 3 only by user 3.
    users = np.array([0, 0, 1, 1, 2, 2, 3])
    items = np.array([0, 1, 0, 1, 1, 2, 3])
    times = np.array([0, 1, 2, 3, 4, 5, 10]) * DAY
    state = fit_item_state(users, items, times, 5, neighbours=2, half_life_days=5.0)
    # cos(0, 1) = 2 / sqrt(2 * 3); cos(1, 2) = 1 / sqrt(3 * 1); item 0 and 2 never co-occur.
    assert state.neighbours[1].tolist() == [0, 2]
    np.testing.assert_allclose(
        state.neighbour_similarity[1], [2 / np.sqrt(6), 1 / np.sqrt(3)], rtol=1e-6
    )
    assert state.neighbours[0].tolist() == [1, 5]  # 5 = none
    assert state.neighbours[3].tolist() == [5, 5] and state.neighbours[4].tolist() == [5, 5]
    np.testing.assert_allclose(state.recent_popularity[3], 1.0)
    np.testing.assert_allclose(state.recent_popularity[2], 0.5)  # 5 days old, 5-day half-life
    np.testing.assert_allclose(state.first_seen / DAY, [0, 1, 5, 10, 10])


def test_item_state_round_trips_through_the_bundle(tmp_path: Path) -> None:
    contents = make_contents()
    n = len(contents.item_ids)
    rng = np.random.default_rng(2)
    state = ItemState(
        np.sort(rng.integers(0, n + 1, size=(n, 4)), axis=1).astype(np.int32),
        rng.random((n, 4)).astype(np.float32),
        rng.random(n) * 10,
        rng.random(n) * 100 * DAY,
    )
    old = contents.ranker
    spec = _spec(item=old.encoder.spec.item, hash_bits=old.encoder.spec.hash_bits)
    encoder = FeatureEncoder(spec, contents.item_features, contents.popularity, state)
    contents.ranker = Ranker(encoder, rng.normal(size=spec.dim), -1.0)
    path = write_bundle(tmp_path / "b", contents)
    loaded = load_bundle(path, parts={"ranker"}).ranker
    assert loaded.encoder.item_state is not None
    for name in ("neighbours", "neighbour_similarity", "recent_popularity", "first_seen"):
        np.testing.assert_array_equal(
            getattr(loaded.encoder.item_state, name), getattr(state, name)
        )
    cand, ann, hist = np.array([3, 9, 27]), np.array([0.3, 0.2, 0.1], np.float32), np.array([1, 2])
    np.testing.assert_array_equal(
        loaded.score({}, cand, ann, hist, 50 * DAY),
        contents.ranker.score({}, cand, ann, hist, 50 * DAY),
    )
    (path / "item_neighbours.npy").write_bytes(
        (path / "item_neighbours.npy").read_bytes()[:-4] + b"\0\0\0\1"
    )
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(path, parts={"ranker"})
