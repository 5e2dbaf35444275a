"""A small bundle built from the model API alone (no training), for the model tests."""

from __future__ import annotations

import numpy as np

from recserve.model import (
    AnnConfig,
    AnnIndex,
    FeatureEncoder,
    FeatureSpec,
    FeatureTransform,
    QueryConfig,
    Ranker,
)
from recserve.model.bundle import BundleContents
from recserve.model.features import RawValue

N_ITEMS = 300
DIM = 16
GENRES = ["action", "comedy", "drama", "horror", "romance"]


def item_features(n: int = N_ITEMS) -> list[dict[str, RawValue]]:
    rng = np.random.default_rng(1)
    out: list[dict[str, RawValue]] = []
    for i in range(n):
        genres = sorted({GENRES[i % 5], GENRES[int(rng.integers(0, 5))]})
        out.append({"genre": genres, "year": str(1950 + i % 70)})
    return out


def feature_spec() -> FeatureSpec:
    return FeatureSpec(
        hash_bits=12,
        user=(
            FeatureTransform("age", "bins", (18.0, 25.0, 35.0, 50.0)),
            FeatureTransform("gender"),
            FeatureTransform("device"),
        ),
        item=(
            FeatureTransform("genre", multi=True),
            FeatureTransform("year", "bins", (1970.0, 1990.0, 2000.0)),
        ),
        popularity_edges=(1.0, 2.0, 3.0),
        numeric_mean=(0.1, 0.5, 2.0, 1.5),
        numeric_scale=(0.5, 0.4, 1.0, 1.2),
        cross_value=0.5,
        token_value=0.8,
    )


def make_contents(seed: int = 0) -> BundleContents:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    popularity = rng.integers(0, 50, N_ITEMS)
    spec = feature_spec()
    features = item_features()
    encoder = FeatureEncoder(spec, features, popularity)
    weights = rng.normal(0.0, 0.3, spec.dim)
    index = AnnIndex.build(vectors, AnnConfig(kind="brute_force"))
    return BundleContents(
        item_ids=[f"item-{i}" for i in range(N_ITEMS)],
        input_vectors=vectors,
        popularity=popularity,
        query=QueryConfig(history_length=5, decay=0.8),
        num_candidates=50,
        index=index,
        ranker=Ranker(encoder, weights, -2.0),
        item_features=features,
        manifest={"scoring_vectors": "input", "metrics": {}},
        users=[("u1", ["item-1", "item-2"], {"age": "30", "gender": "F"})],
        reports={"eval.md": "# report\n"},
    )
