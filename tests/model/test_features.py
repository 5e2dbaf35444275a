from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recserve.model import FeatureEncoder, FeatureSpec, FeatureTransform
from recserve.model.features import stable_hash

from .builders import feature_spec, item_features


def test_transforms_turn_raw_values_into_tokens() -> None:
    age = FeatureTransform("age", "bins", (18.0, 25.0))
    assert age.tokens("17") == ["age=b0"]
    assert age.tokens("18") == ["age=b1"]
    assert age.tokens(" 40 ") == ["age=b2"]
    assert age.tokens("old") == ["age=?"]
    assert age.tokens(None) == [] and age.tokens("") == []
    genre = FeatureTransform("genre", multi=True)
    assert genre.tokens("Action|Drama") == ["genre=Action", "genre=Drama"]
    assert genre.tokens(["Action", " "]) == ["genre=Action"]
    assert FeatureTransform("gender").tokens("F|M") == ["gender=F|M"]


def test_spec_round_trip_and_validation() -> None:
    spec = feature_spec()
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        FeatureSpec(hash_bits=4)
    with pytest.raises(ValueError):
        FeatureSpec(numeric_scale=(1.0, 0.0, 1.0, 1.0))


def test_only_known_user_features_are_used() -> None:
    spec = feature_spec()
    assert spec.user_tokens({"age": "30", "gender": "F", "zip": "12345"}) == ["age=b2", "gender=F"]


def test_stable_hash_is_the_same_in_another_process() -> None:
    code = "from recserve.model.features import stable_hash; print(stable_hash('gender=F'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert int(out) == stable_hash("gender=F")


def test_encode_layout() -> None:
    spec = feature_spec()
    popularity = np.arange(300)
    encoder = FeatureEncoder(spec, item_features(), popularity)
    candidates = np.array([3, 7, 11])
    ann = np.array([0.9, 0.5, 0.5], dtype=np.float32)
    matrix = encoder.encode({"age": "30", "gender": "F"}, candidates, ann)
    assert matrix.shape == (3, spec.dim)
    numeric = matrix[:, spec.hashed_dim :].toarray()
    raw = np.column_stack(
        [ann, [0.0, 0.4, 0.4], np.log1p([0, 1, 1]), np.log1p(popularity[candidates])]
    )
    expected = (raw - np.asarray(spec.numeric_mean)) / np.asarray(spec.numeric_scale)
    np.testing.assert_allclose(numeric, expected, rtol=1e-6, atol=1e-6)
    hashed = matrix[:, : spec.hashed_dim]
    # item 3 has 1 or 2 genres + year + popularity tokens; 2 user tokens: crosses + singles
    for row in range(3):
        n_item = len(
            spec.item_tokens(item_features()[candidates[row]], int(popularity[candidates[row]]))
        )
        expected_mass = n_item * 2 * spec.cross_value + (n_item + 2) * spec.token_value
        assert hashed[row].sum() == pytest.approx(expected_mass)


def test_encode_rejects_bad_input() -> None:
    encoder = FeatureEncoder(feature_spec(), item_features(), np.zeros(300, dtype=np.int64))
    with pytest.raises(ValueError, match="out of range"):
        encoder.encode({}, np.array([300]), np.array([0.0], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encoder.encode({}, np.array([1]), np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError):
        encoder.encode({}, np.array([1, 2]), np.array([0.0], dtype=np.float32))
    assert encoder.encode({}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)).shape == (
        0,
        4100,
    )


def test_rows_do_not_depend_on_list_order_or_neighbours() -> None:
    encoder = FeatureEncoder(feature_spec(), item_features(), np.arange(300))
    features = {"age": "22", "gender": "M", "device": "ios"}
    candidates = np.array([5, 9, 2, 40])
    ann = np.array([0.3, 0.8, 0.1, 0.8], dtype=np.float32)
    whole = encoder.encode(features, candidates, ann)
    order = np.array([2, 0, 3, 1])
    shuffled = encoder.encode(features, candidates[order], ann[order])
    assert (whole[order] != shuffled).nnz == 0


def test_serving_logits_equal_the_encoded_matrix_times_weights() -> None:
    """Ranker.score's matrix-free path computes exactly the features `encode` builds."""
    rng = np.random.default_rng(3)
    spec = FeatureSpec(
        hash_bits=10,
        user=(FeatureTransform("gender"), FeatureTransform("age", "bins", (18.0, 30.0, 50.0))),
        item=(FeatureTransform("genres", multi=True),),
        popularity_edges=(1.0, 3.0),
        cross_value=0.5,
        token_value=2.0,
    )
    genres = ["Drama", "Comedy", "Action", "Horror"]
    items = [
        {"genres": list(rng.choice(genres, size=rng.integers(0, 4), replace=False))}
        for _ in range(50)
    ]
    encoder = FeatureEncoder(spec, items, rng.integers(0, 100, size=50))
    weights = rng.normal(size=spec.dim)
    for user in ({"gender": "F", "age": "24"}, {}, {"gender": "M", "age": "x", "other": "1"}):
        candidates = rng.choice(50, size=20, replace=False)
        ann = rng.normal(size=20).astype(np.float32)
        expected = encoder.encode(user, candidates, ann) @ weights
        np.testing.assert_allclose(
            encoder.logits(user, candidates, ann, weights), expected, rtol=1e-12, atol=1e-12
        )
