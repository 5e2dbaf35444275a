"""Cold-start items in a Recommend answer: the candidates service returns them (flagged
`cold_start`, from its side index) among the ANN candidates; the ranker only knows the bundle's items, so
they skip ranking and keep their ANN position in the ranked list, with the score of the ranked
item they are placed before (the list stays sorted)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from recserve.gateway.domain import CandidateList, CatalogLookup
from recserve.items import ScoredItem
from recserve.runtime.metrics import COLD_START_SERVED, NEW_ITEM_FIRST_RECOMMENDATION


def split_cold(
    candidates: CandidateList,
) -> tuple[CandidateList, list[tuple[int, ScoredItem]]]:
    """(the bundle's candidates, [(ANN position, cold-start item)])."""
    flags = list(candidates.cold_start) or [False] * len(candidates.item_ids)
    keep = [p for p, cold in enumerate(flags) if not cold]
    cold = [
        (
            p,
            ScoredItem(
                candidates.item_ids[p], candidates.ann_scores[p], ann_score=candidates.ann_scores[p]
            ),
        )
        for p, is_cold in enumerate(flags)
        if is_cold
    ]
    trained = CandidateList(
        [candidates.item_ids[p] for p in keep],
        [candidates.item_indices[p] for p in keep],
        [candidates.ann_scores[p] for p in keep],
        candidates.unknown_item_ids,
    )
    return trained, cold


def place_cold(
    ranked: Sequence[ScoredItem], cold: Sequence[tuple[int, ScoredItem]]
) -> list[ScoredItem]:
    """`ranked` with each cold-start item inserted at its ANN position."""
    out = list(ranked)
    for position, item in sorted(cold, key=lambda c: c[0]):
        at = min(position, len(out))
        score = out[at].score if at < len(out) else (out[-1].score if out else item.score)
        out.insert(at, ScoredItem(item.item_id, score, ann_score=item.ann_score))
    return out


def count_served(items: Sequence[ScoredItem], cold_ids: set[str], catalog: CatalogLookup) -> None:
    """Counts the cold-start items in an answer; for an item new since the catalog copy loaded,
    observes the time from its upsert to this, its first answer in this gateway process."""
    served = [i.item_id for i in items if i.item_id in cold_ids]
    if not served:
        return
    COLD_START_SERVED.inc(len(served))
    now = time.time()
    for item_id in served:
        written_at = catalog.take_new_item_written_at(item_id)
        if written_at is not None:
            NEW_ITEM_FIRST_RECOMMENDATION.observe(max(0.0, now - written_at))
