"""Typed results, and their conversion from the wire messages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from recserve.items import ScoredItem
from recserve.v1 import recommender_pb2 as pb
from recserve.v1 import types_pb2

__all__ = ["Recommendations", "RecordedEvents", "ScoredItem", "degraded_reason"]


@dataclass(frozen=True)
class Recommendations:
    items: list[ScoredItem]
    model_version: str
    degraded: bool
    degraded_reason: str  # "" or e.g. "ranking_unavailable" (DegradedReason, lower case)
    degraded_detail: str
    unknown_item_ids: list[str]

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]


@dataclass(frozen=True)
class RecordedEvents:
    accepted: int
    unknown_item_ids: list[str]
    # Events whose event_id the server already had (a retry): accepted, stored once.
    duplicates: int = 0


def degraded_reason(value: int) -> str:
    """ "" for DEGRADED_REASON_UNSPECIFIED, else the enum name without its prefix, lower case."""
    if value == types_pb2.DEGRADED_REASON_UNSPECIFIED:
        return ""
    return types_pb2.DegradedReason.Name(value).removeprefix("DEGRADED_REASON_").lower()


def _recommendations(
    response: pb.RecommendResponse | pb.GetSimilarItemsResponse, unknown_item_ids: Iterable[str]
) -> Recommendations:
    return Recommendations(
        [ScoredItem(i.item_id, i.score, i.ann_score, i.ranker_score) for i in response.items],
        response.model_version,
        response.degraded,
        degraded_reason(response.degraded_reason),
        response.degraded_detail,
        list(unknown_item_ids),
    )


def from_recommend(response: pb.RecommendResponse) -> Recommendations:
    return _recommendations(response, response.unknown_item_ids)


def from_similar(response: pb.GetSimilarItemsResponse) -> Recommendations:
    return _recommendations(response, ())


def from_record(response: pb.RecordEventsResponse) -> RecordedEvents:
    return RecordedEvents(response.accepted, list(response.unknown_item_ids), response.duplicates)
