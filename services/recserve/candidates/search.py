"""Domain logic of candidate generation (no gRPC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recserve.candidates.availability import Unavailable
from recserve.candidates.side_index import SideIndex
from recserve.model import Bundle
from recserve.runtime.errors import InvalidArgument
from recserve.vectors import decode_vector

# ScaNN 1.4.2 has crashed on k >= 2000 in reported issues; over-fetching stays below.
MAX_SEARCH_K = 1999


@dataclass(frozen=True)
class CandidateQuery:
    query_vector: bytes
    item_id: str
    exclude_item_ids: Sequence[str]
    num_candidates: int


@dataclass
class Candidates:
    item_indices: list[int] = field(default_factory=list)
    ann_scores: list[float] = field(default_factory=list)
    unknown_item_ids: list[str] = field(default_factory=list)
    # Cold-start items (side index) by position in the list; their item index is -1.
    cold_item_ids: dict[int, str] = field(default_factory=dict)


def search(
    bundle: Bundle,
    queries: Sequence[CandidateQuery],
    *,
    max_candidates: int,
    unavailable: Unavailable | None = None,
    side: SideIndex | None = None,
) -> list[Candidates]:
    """Top candidates per query, excluding the given items and the unavailable ones (which
    are searched past, so a list is short only when the index runs out)."""
    if not queries:
        return []
    dim = bundle.input_vectors.shape[1]
    n_items = len(bundle.item_ids)
    results = [Candidates() for _ in queries]
    # Per query: its vector (None when its item is unknown) and the indices it excludes.
    vectors: list[np.ndarray | None] = []
    excluded: list[set[int]] = []
    for position, query in enumerate(queries):
        if not 1 <= query.num_candidates <= max_candidates:
            raise InvalidArgument(
                f"queries[{position}].num_candidates={query.num_candidates} must be in [1, {max_candidates}]"
            )
        skip: set[int] = set()
        for item_id in query.exclude_item_ids:
            index = bundle.item_index.get(item_id)
            if index is None:
                results[position].unknown_item_ids.append(item_id)
            else:
                skip.add(index)
        vector: np.ndarray | None = None
        if query.query_vector:
            vector = decode_vector(query.query_vector, dim, f"queries[{position}].query_vector_f32")
        elif query.item_id:
            index = bundle.item_index.get(query.item_id)
            if index is None and side is not None:
                vector = side.input_vector(query.item_id)
            if index is None and vector is None:
                results[position].unknown_item_ids.append(query.item_id)
            elif index is not None:
                skip.add(index)
                vector = bundle.input_vectors[index]
        else:
            raise InvalidArgument(f"queries[{position}] needs query_vector_f32 or item_id")
        vectors.append(vector)
        excluded.append(skip)

    mask, share = None, 0.0
    if unavailable is not None and unavailable.count:
        mask, share = unavailable.mask, unavailable.count / n_items
    most = min(n_items, MAX_SEARCH_K)
    for query, vector, skip, result in zip(queries, vectors, excluded, results, strict=True):
        if vector is None:
            continue
        # Same k as the offline pipeline (num + every excluded id, duplicates included), and one
        # ScaNN call per query: its batched kernels round scores differently (7th digit), which
        # could reorder near-ties, and a request must get the same answer batched or alone.
        wanted = query.num_candidates + len(query.exclude_item_ids) + bool(query.item_id)
        # Plus the unavailable items expected among them; searched again, twice as deep, when
        # more than expected sit near the query.
        fetch = min(most, int(np.ceil(wanted / max(1.0 - share, 0.01))))
        while True:
            _collect(bundle, vector, fetch, skip, mask, query.num_candidates, result)
            if len(result.item_indices) == query.num_candidates or fetch == most:
                break
            fetch = min(most, 2 * fetch)
            result.item_indices.clear()
            result.ann_scores.clear()
        if side is not None and len(side):
            _merge_cold(side, vector, query, result)
    return results


def _merge_cold(
    side: SideIndex,
    vector: np.ndarray,
    query: CandidateQuery,
    result: Candidates,
) -> None:
    """Merges the side index's best items (it holds available ones only) into `result` by
    score: the same dot product as ScaNN's."""
    skip = {*query.exclude_item_ids, query.item_id}
    cold = side.search(vector, query.num_candidates, skip)
    merged = sorted(
        [(-s, 0, i, None) for i, s in zip(result.item_indices, result.ann_scores, strict=True)]
        + [(-s, 1, -1, item_id) for item_id, s in cold]
    )[: query.num_candidates]
    result.item_indices = [index for _, _, index, _ in merged]
    result.ann_scores = [-score for score, _, _, _ in merged]
    result.cold_item_ids = {p: m[3] for p, m in enumerate(merged) if m[3] is not None}


def _collect(
    bundle: Bundle,
    vector: np.ndarray,
    fetch: int,
    skip: set[int],
    mask: np.ndarray | None,
    num_candidates: int,
    result: Candidates,
) -> None:
    indices, scores = bundle.index.search_batched(vector[None, :], fetch)
    found = indices[0]
    usable = found >= 0
    if mask is not None:
        usable &= ~mask[np.where(usable, found, 0)]
    for index, score, ok in zip(found.tolist(), scores[0].tolist(), usable.tolist(), strict=True):
        if not ok or index in skip:
            continue
        result.item_indices.append(index)
        result.ann_scores.append(score)
        if len(result.item_indices) == num_candidates:
            break
