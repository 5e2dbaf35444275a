"""A small synthetic dataset and one bundle trained on it, shared by the training tests.
(`redis_server` / `redis_client` come from tests/conftest.py: a real redis-server.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recserve.model import AnnConfig, AnnIndex, Bundle, FeatureEncoder, Ranker, load_bundle
from recserve.model.bundle import BundleContents, iter_user_seed, write_bundle
from recserve.training.embeddings import Word2VecParams
from recserve.training.pipeline import Progress, TrainConfig, TrainResult, train
from recserve.training.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(items=300, users=200, events=8000, seed=3)
W2V = Word2VecParams(vector_size=16, epochs=5, workers=1)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate(SPEC, out, fmt="csv")
    return out


def small_config(bundles: Path, data: Path) -> TrainConfig:
    return TrainConfig(bundles=bundles, data=str(data), w2v=W2V, num_candidates=40, hash_bits=12)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> TrainResult:
    return train(
        small_config(tmp_path_factory.mktemp("bundles"), synthetic_dir), Progress(lambda _msg: None)
    )


def variant(bundle: Bundle, root: Path, seed: int) -> Path:
    """Another version of a bundle: same items, different vectors."""
    rng = np.random.default_rng(seed)
    vectors = bundle.input_vectors + rng.normal(0, 0.5, bundle.input_vectors.shape).astype(
        np.float32
    )
    encoder = bundle.ranker.encoder
    contents = BundleContents(
        item_ids=bundle.item_ids,
        input_vectors=vectors,
        popularity=bundle.popularity,
        query=replace(bundle.query),
        num_candidates=bundle.num_candidates,
        index=AnnIndex.build(vectors, AnnConfig()),
        ranker=Ranker(
            FeatureEncoder(
                encoder.spec, bundle.item_features, bundle.popularity, encoder.item_state
            ),
            bundle.ranker.weights,
            0.0,
        ),
        item_features=bundle.item_features,
        manifest={"scoring_vectors": "input"},
        users=list(iter_user_seed(bundle)),
    )
    return write_bundle(root, contents, now=lambda: 1_900_000_000.0 + seed)


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory, trained: TrainResult) -> list[Bundle]:
    """Three bundle versions over the same items, for publish tests."""
    base = load_bundle(trained.bundle)
    root = tmp_path_factory.mktemp("versions")
    return [load_bundle(variant(base, root, seed)) for seed in range(3)]


def write(path: Path, text: str) -> Path:
    """Writes a small UTF-8 input file for a data-reader test; returns its path."""
    path.write_text(text, encoding="utf-8")
    return path
