"""`ScoredItem`: one recommended item, shared by the gateway and the clients (no dependencies,
so the client does not import the serving model)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoredItem:
    item_id: str
    score: float  # ranker probability, ANN score, or popularity score on a fallback
    # Per-stage scores, filled with include_stage_scores=True.
    ann_score: float = 0.0
    ranker_score: float = 0.0
