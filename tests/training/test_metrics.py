"""Metrics and baselines against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recserve.training.ann_tuning import exact_topk, recall_at_k
from recserve.training.evaluation import (
    EvalCases,
    ItemKnn,
    auc,
    grouped_auc,
    hit_rate,
    markdown_table,
    ndcg,
    popularity_ranks,
    rank_in_list,
)


def test_hit_rate_and_ndcg() -> None:
    ranks = np.array([0, 3, 9, 10, -1])
    assert hit_rate(ranks, 10) == pytest.approx(3 / 5)
    assert hit_rate(ranks, 1) == pytest.approx(1 / 5)
    expected = (1 / math.log2(2) + 1 / math.log2(5) + 1 / math.log2(11)) / 5
    assert ndcg(ranks, 10) == pytest.approx(expected)
    assert ndcg(np.array([1]), 1) == 0.0
    assert math.isnan(hit_rate(np.array([]), 10))


def test_auc_with_ties() -> None:
    # positives 0.8 and 0.4; negatives 0.6, 0.4, 0.1:
    # pairs won: 0.8 beats all 3; 0.4 beats 0.1, ties 0.4 (half) -> (3 + 1.5) / 6
    assert auc(np.array([1, 0, 1, 0, 0]), np.array([0.8, 0.6, 0.4, 0.4, 0.1])) == pytest.approx(
        4.5 / 6
    )
    assert auc(np.array([1, 0]), np.array([0.1, 0.9])) == 0.0
    assert math.isnan(auc(np.array([0, 0]), np.array([0.1, 0.2])))


def test_grouped_auc_averages_groups_with_both_classes() -> None:
    labels = np.array([1, 0, 0, 0, 1, 0, 0])
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.4, 0.3])
    groups = np.array([0, 0, 0, 1, 1, 1, 2])
    # group 0: AUC 1; group 1: positive 0.2 below both negatives -> 0; group 2: one class -> skipped
    assert grouped_auc(labels, scores, groups) == pytest.approx(0.5)


def test_rank_in_list() -> None:
    assert rank_in_list(np.array([5, 3, 9]), 9) == 2
    assert rank_in_list(np.array([5, 3, 9]), 4) == -1


def test_popularity_ranks_skip_seen_items() -> None:
    counts = np.array([5, 9, 9, 1, 0])  # order: 1, 2 (tie by code), 0, 3, 4
    cases = EvalCases(
        users=np.array([0, 1, 2]),
        targets=np.array([0, 4, 1]),
        histories=[np.array([2]), np.array([], dtype=np.int64), np.array([1, 3])],
    )
    # user 0: 1, [2 seen], 0 -> rank 1; user 1: item 4 is last -> 4; user 2: target already seen
    np.testing.assert_array_equal(popularity_ranks(cases, counts), [1, 4, -1])


def test_item_knn_cosine_on_last_item() -> None:
    # users x items:  u0: 0 1 2   u1: 0 1   u2: 1 3   u3: 3
    users = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    items = np.array([0, 1, 2, 0, 1, 1, 3, 3])
    knn = ItemKnn(users, items, 4, 5)
    # cos(1, 0) = 2/sqrt(3*2) = .816, cos(1, 2) = 1/sqrt(3) = .577, cos(1, 3) = 1/sqrt(6) = .408
    cases = EvalCases(
        users=np.array([9, 9, 9]),
        targets=np.array([2, 3, 4]),
        histories=[np.array([1]), np.array([4, 1]), np.array([1])],
    )
    # case 0: order 0 (.816), 2 (.577) -> rank 1; case 1: 0, 2, 3 -> rank 2
    # case 2: item 4 never seen (score 0) -> after 0, 2, 3 -> rank 3
    np.testing.assert_array_equal(knn.ranks(cases), [1, 2, 3])


def test_exact_topk_and_recall() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :7]
    np.testing.assert_array_equal(exact_topk(queries, vectors, 7, chunk=64), truth)
    assert recall_at_k(truth, truth) == 1.0
    half = truth.copy()
    half[:, 4:] = -5
    assert recall_at_k(half, truth) == pytest.approx(4 / 7)


def test_markdown_table() -> None:
    table = markdown_table(
        {"popularity": {"hr@10": 0.05, "ndcg@10": 0.02}, "pipeline": {"hr@10": 0.2, "auc": 0.7}}
    )
    assert "| popularity | 0.0500 | 0.0200 |  |  |  |" in table
    assert "| pipeline | 0.2000 |  |  | 0.7000 |  |" in table
