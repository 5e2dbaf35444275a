"""Domain logic of candidate generation (no gRPC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recserve.model import Bundle
from recserve.runtime.errors import InvalidArgument
from recserve.vectors import decode_vector


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


def search(
    bundle: Bundle, queries: Sequence[CandidateQuery], *, max_candidates: int
) -> list[Candidates]:
    """Top candidates per query, excluding the given items."""
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
            if index is None:
                results[position].unknown_item_ids.append(query.item_id)
            else:
                skip.add(index)
                vector = bundle.input_vectors[index]
        else:
            raise InvalidArgument(f"queries[{position}] needs query_vector_f32 or item_id")
        vectors.append(vector)
        excluded.append(skip)

    for query, vector, skip, result in zip(queries, vectors, excluded, results, strict=True):
        if vector is None:
            continue
        # Same k as the offline pipeline (num + every excluded id, duplicates included), and one
        # ScaNN call per query: its batched kernels round scores differently (7th digit), which
        # could reorder near-ties, and a request must get the same answer batched or alone.
        fetch = min(
            n_items, query.num_candidates + len(query.exclude_item_ids) + bool(query.item_id)
        )
        indices, scores = bundle.index.search_batched(vector[None, :], fetch)
        for index, score in zip(indices[0].tolist(), scores[0].tolist(), strict=True):
            if index < 0 or index in skip:
                continue
            result.item_indices.append(index)
            result.ann_scores.append(score)
            if len(result.item_indices) == query.num_candidates:
                break
    return results
