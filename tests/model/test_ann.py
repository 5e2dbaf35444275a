from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from recserve.model import MAX_K, AnnConfig, AnnIndex
from recserve.training.ann_tuning import exact_topk, recall_at_k, tune_index


def _data(n: int = 2000, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((50, d)).astype(
        np.float32
    )


def test_brute_force_is_exact_and_typed() -> None:
    vectors, queries = _data()
    index = AnnIndex.build(vectors, AnnConfig(kind="brute_force"))
    found, scores = index.search_batched(queries, 20)
    assert found.dtype == np.int32 and scores.dtype == np.float32 and found.shape == (50, 20)
    np.testing.assert_array_equal(found, exact_topk(queries, vectors, 20))
    np.testing.assert_allclose(
        scores, np.take_along_axis(queries @ vectors.T, found, axis=1), rtol=1e-5
    )


def test_k_is_capped_by_catalog_and_max_k() -> None:
    vectors, queries = _data(n=30)
    index = AnnIndex.build(vectors, AnnConfig())
    assert index.search_batched(queries, 500)[0].shape == (50, 30)
    big, big_q = _data(n=MAX_K + 200)
    assert AnnIndex.build(big, AnnConfig()).search_batched(big_q[:2], 5000)[0].shape == (2, MAX_K)
    with pytest.raises(ValueError):
        index.search_batched(queries, 0)


def test_invalid_vectors_are_refused_before_scann() -> None:
    vectors, _queries = _data(n=100)
    bad = vectors.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        AnnIndex.build(bad, AnnConfig())
    index = AnnIndex.build(vectors, AnnConfig())
    with pytest.raises(ValueError, match="NaN"):
        index.search_batched(np.full((1, 16), np.inf, dtype=np.float32), 5)
    with pytest.raises(ValueError, match="dimension"):
        index.search_batched(np.zeros((1, 8), dtype=np.float32), 5)


def test_serialize_load_round_trip(tmp_path: Path) -> None:
    vectors, queries = _data()
    config = AnnConfig(kind="ah", reorder_num_neighbors=100)
    index = AnnIndex.build(vectors, config)
    index.serialize(tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")  # relative asset paths survive a move
    loaded = AnnIndex.load(tmp_path / "b", size=2000, dim=16, config=config)
    for k in (10, 50):
        np.testing.assert_array_equal(
            loaded.search_batched(queries, k)[0], index.search_batched(queries, k)[0]
        )
    assert not list((tmp_path / "b").glob("*.pkl"))


def test_tuned_ah_reaches_target_and_prefix_property() -> None:
    vectors, queries = _data(n=3000)
    index, report = tune_index(vectors, queries, 50, kind="ah", target_recall=0.95)
    assert report["recall@50"] >= 0.95
    assert (
        recall_at_k(index.search_batched(queries, 50)[0], exact_topk(queries, vectors, 50)) >= 0.95
    )
    # a fixed reorder depth makes smaller k a prefix of larger k (services may ask different k)
    reorder = index.config.reorder_num_neighbors
    small = index.search_batched(queries, 40)[0]
    large = index.search_batched(queries, min(reorder, 90))[0]
    np.testing.assert_array_equal(small, large[:, :40])


def test_tree_index_tunes_leaves() -> None:
    vectors, queries = _data(n=4000)
    index, report = tune_index(vectors, queries, 20, kind="tree_ah", target_recall=0.9)
    assert index.config.kind == "tree_ah" and index.config.num_leaves > 1
    assert report["recall@20"] >= 0.9
    found, _ = index.search_batched(queries, 20)
    assert ((found >= -1) & (found < 4000)).all()


def test_concurrent_searches_agree() -> None:
    vectors, queries = _data(n=5000)
    index = AnnIndex.build(vectors, AnnConfig())
    expected = index.search_batched(queries, 10)[0]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: index.search_batched(queries[i : i + 1], 10)[0], list(range(50)) * 4)
        )
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got[0], expected[i % 50])
