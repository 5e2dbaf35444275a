"""recserve.candidates.search on a small real bundle (brute-force ScaNN), no gRPC."""

from __future__ import annotations

import numpy as np
import pytest

from recserve.candidates.search import CandidateQuery, search
from recserve.model import Bundle, load_bundle
from recserve.model.bundle import write_bundle
from recserve.runtime.errors import InvalidArgument
from recserve.vectors import encode_vector
from tests.model.builders import N_ITEMS, make_contents

MAX = 50


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return load_bundle(write_bundle(tmp_path_factory.mktemp("bundles"), make_contents()))


def by_dot_product(bundle: Bundle, vector: np.ndarray) -> list[int]:
    """Reference order: every item by descending dot product with `vector`."""
    return np.argsort(-(bundle.input_vectors @ vector), kind="stable").tolist()


def query(
    vector: bytes = b"", item_id: str = "", exclude: list[str] | None = None, n: int = 10
) -> CandidateQuery:
    return CandidateQuery(vector, item_id, exclude or [], n)


def test_empty_batch_answers_nothing(bundle: Bundle) -> None:
    assert search(bundle, [], max_candidates=MAX) == []


def test_query_vector_returns_the_top_items_by_dot_product(bundle: Bundle) -> None:
    vector = bundle.input_vectors[[3, 9]].mean(axis=0)
    [result] = search(bundle, [query(encode_vector(vector), n=10)], max_candidates=MAX)
    assert result.item_indices == by_dot_product(bundle, vector)[:10]
    np.testing.assert_allclose(
        result.ann_scores, bundle.input_vectors[result.item_indices] @ vector, rtol=1e-5
    )
    assert result.unknown_item_ids == []


def test_similar_items_leave_out_the_seed_and_the_excluded(bundle: Bundle) -> None:
    seed = bundle.input_vectors[7]
    reference = [i for i in by_dot_product(bundle, seed) if i != 7]
    excluded = reference[:3]
    [result] = search(
        bundle,
        [query(item_id="item-7", exclude=[f"item-{i}" for i in excluded], n=5)],
        max_candidates=MAX,
    )
    # Still 5 candidates: the search asked for enough to make up for the removed ones.
    assert result.item_indices == reference[3:8]


def test_unknown_ids_are_reported_not_fatal(bundle: Bundle) -> None:
    unknown_seed, unknown_exclude = search(
        bundle,
        [
            query(item_id="no-such-item"),
            query(item_id="item-1", exclude=["ghost", "item-2"]),
        ],
        max_candidates=MAX,
    )
    assert unknown_seed.item_indices == [] and unknown_seed.unknown_item_ids == ["no-such-item"]
    assert unknown_exclude.unknown_item_ids == ["ghost"]
    assert len(unknown_exclude.item_indices) == 10
    assert not {1, 2} & set(unknown_exclude.item_indices)


def test_a_batch_answers_like_each_query_alone(bundle: Bundle) -> None:
    queries = [
        query(encode_vector(bundle.input_vectors[4]), exclude=["item-4"], n=7),
        query(item_id="item-20", n=12),
        query(item_id="missing"),
    ]
    together = search(bundle, queries, max_candidates=MAX)
    alone = [search(bundle, [q], max_candidates=MAX)[0] for q in queries]
    assert together == alone


def test_more_candidates_than_items_returns_the_whole_catalog_once(bundle: Bundle) -> None:
    [result] = search(bundle, [query(item_id="item-0", n=N_ITEMS)], max_candidates=N_ITEMS)
    assert sorted(result.item_indices) == list(range(1, N_ITEMS))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (query(item_id="item-1", n=0), r"queries\[1\]\.num_candidates=0 must be in \[1, 50\]"),
        (query(item_id="item-1", n=MAX + 1), r"num_candidates=51"),
        (query(), r"queries\[1\] needs query_vector_f32 or item_id"),
        (query(b"\x00" * 12), r"queries\[1\]\.query_vector_f32 has 12 bytes; expected 64"),
        (query(encode_vector(np.full(16, np.nan))), r"NaN or infinite"),
    ],
)
def test_invalid_queries_name_the_offending_query(
    bundle: Bundle, bad: CandidateQuery, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        search(bundle, [query(item_id="item-1"), bad], max_candidates=MAX)
