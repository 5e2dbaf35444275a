"""End to end on a small synthetic dataset: train, bundle, evaluation, recommend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recserve.model import Bundle, load_bundle, recommend
from recserve.model import bundle as bundle_module
from recserve.model.bundle import MAX_POPULAR_ITEMS, list_versions
from recserve.training.pipeline import TrainResult

from .conftest import variant


def test_bundle_contents_and_metrics(trained: TrainResult) -> None:
    bundle = load_bundle(trained.bundle)
    manifest = bundle.manifest
    metrics = manifest["metrics"]
    for method in ("popularity", "item_knn", "candidates", "pipeline"):
        assert {"hr@10", "ndcg@10"} <= set(metrics[method])
    assert "recall@100" in metrics["candidates"] and "auc" in metrics["pipeline"]
    # the learned stages beat popularity on this clustered data
    assert metrics["candidates"]["hr@10"] > metrics["popularity"]["hr@10"]
    assert metrics["pipeline"]["hr@10"] > metrics["popularity"]["hr@10"]
    assert manifest["scoring_vectors"] in ("output", "input")
    assert manifest["ann"]["served"]["recall@40"] >= 0.95
    assert manifest["data"]["fingerprint"] and manifest["data"]["events"] > 7900
    assert manifest["ranker"]["item_features"] == ["genres", "year"]
    report = json.loads((bundle.path / "eval.json").read_text())
    assert report["metrics"] == metrics
    assert "| pipeline |" in (bundle.path / "eval.md").read_text()
    assert_popular_list(bundle, MAX_POPULAR_ITEMS)  # a catalog under the cap: every item


def assert_popular_list(bundle: Bundle, cap: int) -> None:
    """popular.json: min(cap, catalog size) distinct items, most popular first, and no item left
    out is more popular than one in the list."""
    popular = bundle.popular
    assert len(popular) == min(cap, len(bundle.item_ids)) == len(set(popular.tolist()))
    counts = bundle.popularity[popular]
    assert (counts[:-1] >= counts[1:]).all()
    left_out = np.setdiff1d(np.arange(len(bundle.item_ids)), popular)
    assert left_out.size == 0 or bundle.popularity[left_out].max() <= counts.min()


def test_popular_list_is_capped(
    tmp_path: Path, trained: TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = load_bundle(trained.bundle)
    cap = len(base.item_ids) // 6
    monkeypatch.setattr(bundle_module, "MAX_POPULAR_ITEMS", cap)
    capped = load_bundle(variant(base, tmp_path, seed=0))
    assert_popular_list(capped, cap)


def test_recommend_on_a_trained_bundle(trained: TrainResult) -> None:
    bundle = load_bundle(trained.bundle)
    history = [bundle.item_index[i] for i in ("i1", "i2", "i3") if i in bundle.item_index]
    features = {"age": "30", "gender": "F", "device": "ios"}
    top = recommend(bundle, history, features, 10)
    assert len(top) == 10 and top == recommend(bundle, history, features, 10)
    assert not {i for i, _, _ in top} & set(history)
    assert all(0.0 < score < 1.0 for _, score, _ in top)


def test_cli_train_prints_table_and_bundle(tmp_path: Path, synthetic_dir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "recserve.training", "train", "--bundles", str(tmp_path),
            "--data", str(synthetic_dir), "--epochs", "2", "--vector-size", "8", "--num-candidates", "20",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| candidates |" in result.stdout
    [version] = list_versions(tmp_path)
    assert f"bundle: {tmp_path / version}" in result.stdout
    assert "word2vec epoch 2/2" in result.stderr  # progress goes to stderr
    assert load_bundle(tmp_path / version).num_candidates == 20


def test_reproducible_with_one_worker(
    tmp_path: Path, synthetic_dir: Path, trained: TrainResult
) -> None:
    from recserve.training.pipeline import Progress, train

    from .conftest import small_config

    again = train(small_config(tmp_path, synthetic_dir), Progress(lambda _msg: None))
    first, second = load_bundle(trained.bundle), load_bundle(again.bundle)
    np.testing.assert_array_equal(first.input_vectors, second.input_vectors)
    assert first.manifest["metrics"] == second.manifest["metrics"]
