"""recserve.ranking.rank on a small real bundle, no gRPC."""

from __future__ import annotations

import numpy as np
import pytest

from recserve.model import Bundle, load_bundle
from recserve.model.bundle import write_bundle
from recserve.model.filters import ItemFilter
from recserve.ranking.rank import RankedItem, RankQuery, history_indices, rank_queries
from recserve.runtime.errors import InvalidArgument
from tests.model.builders import make_contents

FEATURES = {"age": "31", "gender": "F", "device": "web"}
CANDIDATES = list(range(40, 80))
MAX_K = 20


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return load_bundle(write_bundle(tmp_path_factory.mktemp("bundles"), make_contents()))


def ann_scores(n: int) -> list[float]:
    return np.linspace(0.9, 0.1, n).tolist()


def rank_query(
    k: int = 5,
    items: list[int] | None = None,
    filters: list[ItemFilter] | None = None,
    features: dict[str, str] | None = None,
) -> RankQuery:
    items = CANDIDATES if items is None else items
    return RankQuery(FEATURES if features is None else features, items, ann_scores(len(items)),
                     filters or [], k)  # fmt: skip


def reference(bundle: Bundle, q: RankQuery) -> list[RankedItem]:
    """Every candidate scored as one list, best first, ties by item index, then filtered."""
    items = np.asarray(q.item_indices, dtype=np.int64)
    ann = np.asarray(q.ann_scores, dtype=np.float32)
    scores = bundle.ranker.score(q.features, items, ann)
    ranked = [
        RankedItem(int(items[o]), float(scores[o]), float(ann[o]))
        for o in np.lexsort((items, -scores))
    ]
    return [
        r
        for r in ranked
        if all(f.accepts(bundle.item_feature_values(r.index, f.feature)) for f in q.filters)
    ][: q.k]


def test_empty_batch_and_empty_lists(bundle: Bundle) -> None:
    assert rank_queries(bundle, [], max_k=MAX_K) == []
    assert rank_queries(bundle, [rank_query(items=[]), rank_query(k=3)], max_k=MAX_K)[0] == []


def test_top_k_by_ranker_score(bundle: Bundle) -> None:
    q = rank_query(k=7)
    [got] = rank_queries(bundle, [q], max_k=MAX_K)
    assert got == reference(bundle, q)
    assert len(got) == 7
    assert [r.score for r in got] == sorted((r.score for r in got), reverse=True)


def test_ties_are_broken_by_item_index(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    def same_score(features: object, candidates: list[np.ndarray], *_: object) -> list[np.ndarray]:
        return [np.full(c.size, 0.5, dtype=np.float32) for c in candidates]

    monkeypatch.setattr(bundle.ranker, "score_batch", same_score)
    [got] = rank_queries(bundle, [rank_query(k=4, items=[70, 12, 55, 3, 90])], max_k=MAX_K)
    assert [r.index for r in got] == [3, 12, 55, 70]


@pytest.mark.parametrize(
    "item_filter",
    [
        ItemFilter("genre", frozenset({"comedy"}), exclude=False),
        ItemFilter("genre", frozenset({"comedy", "drama"}), exclude=True),
        ItemFilter("year", frozenset({"1990", "1991", "1992"}), exclude=False),
    ],
)
def test_filters_keep_k_items_that_pass(bundle: Bundle, item_filter: ItemFilter) -> None:
    q = rank_query(k=5, filters=[item_filter])
    [got] = rank_queries(bundle, [q], max_k=MAX_K)
    assert got == reference(bundle, q)
    assert got, "the filter removed every candidate: the test would not test anything"
    for r in got:
        values = bundle.item_feature_values(r.index, item_filter.feature)
        assert values.isdisjoint(item_filter.any_of) == item_filter.exclude


def test_filtering_does_not_change_scores(bundle: Bundle) -> None:
    # List-relative features (ANN rank, gap) see the whole list, filtered or not.
    unfiltered = {
        r.index: r.score for r in rank_queries(bundle, [rank_query(k=MAX_K)], max_k=MAX_K)[0]
    }
    only = ItemFilter("genre", frozenset({"horror"}), exclude=False)
    for r in rank_queries(bundle, [rank_query(k=MAX_K, filters=[only])], max_k=MAX_K)[0]:
        if r.index in unfiltered:
            assert r.score == unfiltered[r.index]


def test_filter_on_an_absent_feature(bundle: Bundle) -> None:
    keep_none = ItemFilter("colour", frozenset({"red"}), exclude=False)
    keep_all = ItemFilter("colour", frozenset({"red"}), exclude=True)
    none, every = rank_queries(
        bundle, [rank_query(filters=[keep_none]), rank_query(filters=[keep_all])], max_k=MAX_K
    )
    assert none == [] and every == rank_queries(bundle, [rank_query()], max_k=MAX_K)[0]


def test_a_batch_answers_like_each_query_alone(bundle: Bundle) -> None:
    queries = [
        rank_query(k=4),
        rank_query(k=6, items=[5, 9, 1, 300 - 1], features={"age": "70"}),
        rank_query(k=3, filters=[ItemFilter("genre", frozenset({"action"}), exclude=False)]),
    ]
    alone = [rank_queries(bundle, [q], max_k=MAX_K)[0] for q in queries]
    assert rank_queries(bundle, queries, max_k=MAX_K) == alone


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (rank_query(k=0), r"queries\[1\]\.k=0 must be in \[1, 20\]"),
        (rank_query(k=MAX_K + 1), r"k=21"),
        (RankQuery(FEATURES, [1, 2], [0.5], [], 3), r"queries\[1\] has 2 item_indices but 1"),
        (rank_query(items=[1, 300]), r"outside \[0, 300\)"),
        (rank_query(items=[-1]), r"outside"),
        (RankQuery(FEATURES, [1], [float("nan")], [], 3), r"NaN or infinite"),
    ],
)
def test_invalid_queries_name_the_offending_query(
    bundle: Bundle, bad: RankQuery, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        rank_queries(bundle, [rank_query(), bad], max_k=MAX_K)


def test_history_ids_become_indices_unknown_skipped_capped(bundle: Bundle) -> None:
    ids = bundle.item_ids
    got = history_indices(bundle, [ids[5], "no-such-item", ids[2]])
    assert got.tolist() == [5, 2]
    cap = bundle.ranker.encoder.spec.max_history
    long = [ids[i % len(ids)] for i in range(cap + 7)]
    assert history_indices(bundle, long).tolist() == [i % len(ids) for i in range(7, cap + 7)]
