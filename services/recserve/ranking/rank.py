"""Domain logic of ranking (no gRPC)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recserve.model import Bundle
from recserve.model.filters import ItemFilter
from recserve.model.recommend import rank
from recserve.runtime.errors import InvalidArgument


@dataclass(frozen=True)
class RankQuery:
    features: Mapping[str, str]
    item_indices: Sequence[int]
    ann_scores: Sequence[float]
    filters: Sequence[ItemFilter]
    k: int
    # The user's known item ids, oldest first; ids this version does not know are skipped.
    history_item_ids: Sequence[str] = ()
    # Epoch seconds the age features are measured at; None = now.
    request_time_s: float | None = None


@dataclass(frozen=True)
class RankedItem:
    index: int
    score: float
    ann_score: float


def passes(bundle: Bundle, index: int, filters: Sequence[ItemFilter]) -> bool:
    return all(f.accepts(bundle.item_feature_values(index, f.feature)) for f in filters)


def history_indices(bundle: Bundle, item_ids: Sequence[str]) -> np.ndarray:
    """The history's item indices in this version, oldest first, at most the ranker's
    max_history most recent (older items are never read)."""
    index_of = bundle.item_index
    recent = item_ids[-bundle.ranker.encoder.spec.max_history :]
    return np.asarray([index_of[i] for i in recent if i in index_of], dtype=np.int64)


def rank_queries(
    bundle: Bundle, queries: Sequence[RankQuery], *, max_k: int
) -> list[list[RankedItem]]:
    """Scores every query's candidates in one vectorized call, then keeps per query the first k
    that pass its filters, in the offline order (`recserve.model.recommend.rank`)."""
    n_items = len(bundle.item_ids)
    indices_of: list[np.ndarray] = []
    ann_of: list[np.ndarray] = []
    for position, query in enumerate(queries):
        if not 1 <= query.k <= max_k:
            raise InvalidArgument(f"queries[{position}].k={query.k} must be in [1, {max_k}]")
        if len(query.item_indices) != len(query.ann_scores):
            raise InvalidArgument(
                f"queries[{position}] has {len(query.item_indices)} item_indices "
                f"but {len(query.ann_scores)} ann_scores"
            )
        indices = np.asarray(query.item_indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n_items):
            raise InvalidArgument(
                f"queries[{position}] has an item index outside [0, {n_items}) (catalog size of this version)"
            )
        ann = np.asarray(query.ann_scores, dtype=np.float32)
        if not np.isfinite(ann).all():
            raise InvalidArgument(f"queries[{position}].ann_scores contains NaN or infinite values")
        indices_of.append(indices)
        ann_of.append(ann)
    # Scored as whole lists before filtering: list-relative features (ANN gap, rank) must see the
    # same list as offline evaluation did.
    scored = [i for i, indices in enumerate(indices_of) if indices.size]
    now = time.time()
    probabilities = bundle.ranker.score_batch(
        [queries[i].features for i in scored],
        [indices_of[i] for i in scored],
        [ann_of[i] for i in scored],
        [history_indices(bundle, queries[i].history_item_ids) for i in scored],
        [queries[i].request_time_s or now for i in scored],
    )
    scores_of = dict(zip(scored, probabilities, strict=True))
    results: list[list[RankedItem]] = []
    for position, query in enumerate(queries):
        indices, ann = indices_of[position], ann_of[position]
        if not indices.size:
            results.append([])
            continue
        scores = scores_of[position]
        ranked: list[RankedItem] = []
        for o in rank(scores, indices, indices.size).tolist():
            index = int(indices[o])
            if query.filters and not passes(bundle, index, query.filters):
                continue
            ranked.append(RankedItem(index, float(scores[o]), float(ann[o])))
            if len(ranked) == query.k:
                break
        results.append(ranked)
    return results
