"""The whole offline pipeline; the services reproduce it stage by stage.

Training and evaluation call `retrieve` and `rank` directly (batched), `recommend` calls them
for one user, so what is measured offline is what is served.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from recserve.model.ann import AnnIndex
from recserve.model.bundle import Bundle
from recserve.model.query import QueryConfig, query_vector
from recserve.model.ranker import Ranker

# Index space, for batched offline evaluation; the services' id-space types are in
# recserve.gateway.domain (CandidateList, Recommendation).
RankedItems = list[tuple[int, float, float]]  # (item index, ranker score, ann score), best first
AnnCandidates = tuple[np.ndarray, np.ndarray]  # (int64 item indices, float32 ANN scores)


def retrieve(
    index: AnnIndex,
    input_vectors: np.ndarray,
    config: QueryConfig,
    histories: Sequence[Sequence[int] | np.ndarray],
    num_candidates: int,
    excludes: Sequence[Collection[int]] | None = None,
) -> list[AnnCandidates]:
    """Stages 1-3 for several users: query vector of each history (oldest first), one batched
    search for num_candidates + len(history) + len(exclude), drop history/exclude items, keep
    the first num_candidates in ANN order. Empty history -> empty list (cold start)."""
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    excludes = excludes if excludes is not None else [()] * len(histories)
    if len(excludes) != len(histories):
        raise ValueError("histories and excludes must have the same length")
    n_items = input_vectors.shape[0]
    hists = [np.asarray(h, dtype=np.int64) for h in histories]
    rows = [i for i, h in enumerate(hists) if h.size]
    out: list[AnnCandidates] = [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in hists]
    if not rows:
        return out
    for h in hists:
        if h.size and (h.min() < 0 or h.max() >= n_items):
            raise ValueError(f"history contains an item index outside [0, {n_items})")
    queries = np.stack([query_vector(input_vectors[hists[i]], config) for i in rows])
    fetch = max(num_candidates + hists[i].size + len(excludes[i]) for i in rows)
    found, scores = index.search_batched(queries, fetch)
    for row, i in enumerate(rows):
        banned = set(hists[i].tolist()) | {int(e) for e in excludes[i]}
        keep = [j for j, item in enumerate(found[row].tolist()) if item >= 0 and item not in banned]
        keep = keep[:num_candidates]
        out[i] = (found[row][keep].astype(np.int64), scores[row][keep])
    return out


def rank(ranked_scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Stage 5: positions of the top k, score descending, ties by item index ascending."""
    return np.lexsort((candidates, -ranked_scores))[:k]


def recommend(
    bundle: Bundle,
    history: Sequence[int],
    user_features: Mapping[str, str],
    k: int,
    *,
    exclude: Collection[int] = (),
    num_candidates: int | None = None,
    now: float | None = None,
) -> RankedItems:
    """Top-k (item index, ranker score, ann score), best first; history is oldest first;
    `now` is the request time the ranker's age features read (None: this machine's clock, as
    the ranking service does).

    Stages: `retrieve` (query vector -> ANN search -> drop history/exclude -> first
    num_candidates), `Ranker.score`, then sort by score desc, ties by item index asc.
    Empty history (cold start): the popular list minus exclude, score 1 / (1 + rank in the
    popular list), ann score 0 — what the gateway serves when there is no query vector.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(history) == 0:
        banned = {int(i) for i in exclude}
        out: RankedItems = []
        for position, item in enumerate(bundle.popular.tolist()):
            if item not in banned:
                out.append((item, 1.0 / (1 + position), 0.0))
                if len(out) == k:
                    break
        return out
    wanted = bundle.num_candidates if num_candidates is None else num_candidates
    [(candidates, ann)] = retrieve(
        bundle.index, bundle.input_vectors, bundle.query, [history], wanted, [exclude]
    )
    if candidates.size == 0:
        return []
    ranker: Ranker = bundle.ranker
    scores = ranker.score(
        user_features,
        candidates,
        ann,
        np.asarray(history, dtype=np.int64),
        time.time() if now is None else now,
    )
    return [
        (int(candidates[o]), float(scores[o]), float(ann[o])) for o in rank(scores, candidates, k)
    ]
