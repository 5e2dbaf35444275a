"""Synchronous client with typed results; one channel per client, safe to share across threads."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc

from recserve.v1 import recommender_pb2 as pb
from recserve.v1 import types_pb2
from recserve.v1.recommender_pb2_grpc import RecommenderServiceStub


@dataclass(frozen=True)
class ScoredItem:
    item_id: str
    score: float
    ann_score: float = 0.0
    ranker_score: float = 0.0


@dataclass(frozen=True)
class Recommendations:
    items: list[ScoredItem]
    model_version: str
    degraded: bool
    degraded_reason: str
    degraded_detail: str
    unknown_item_ids: list[str]

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]


@dataclass(frozen=True)
class RecordedEvents:
    accepted: int
    unknown_item_ids: list[str]


def _reason(value: int) -> str:
    name = types_pb2.DegradedReason.Name(value)
    return "" if value == 0 else name.removeprefix("DEGRADED_REASON_").lower()


def _items(items: Sequence[types_pb2.ScoredItem]) -> list[ScoredItem]:
    return [ScoredItem(i.item_id, i.score, i.ann_score, i.ranker_score) for i in items]


class RecommenderClient:
    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls_ca_file: str | None = None,
        timeout_s: float = 1.0,
    ):
        if tls_ca_file:
            with open(tls_ca_file, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = RecommenderServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        grpc.channel_ready_future(self._channel).result(timeout=timeout_s)

    def recommend(
        self,
        user_id: str = "",
        *,
        recent_item_ids: Sequence[str] = (),
        k: int = 10,
        context: Mapping[str, str] | None = None,
        exclude_item_ids: Sequence[str] = (),
        filters: Sequence[types_pb2.ItemFilter] = (),
        include_stage_scores: bool = False,
    ) -> Recommendations:
        response = self._stub.Recommend(
            pb.RecommendRequest(
                user_id=user_id,
                recent_item_ids=recent_item_ids,
                context=context or {},
                k=k,
                exclude_item_ids=exclude_item_ids,
                filters=filters,
                include_stage_scores=include_stage_scores,
            ),
            timeout=self._timeout_s,
            metadata=self._metadata,
        )
        return Recommendations(
            _items(response.items),
            response.model_version,
            response.degraded,
            _reason(response.degraded_reason),
            response.degraded_detail,
            list(response.unknown_item_ids),
        )

    def record_events(
        self, user_id: str, item_ids: Sequence[str], *, event_type: str = "view"
    ) -> RecordedEvents:
        now_ms = int(time.time() * 1000)
        response = self._stub.RecordEvents(
            pb.RecordEventsRequest(
                user_id=user_id,
                events=[
                    types_pb2.Event(item_id=i, timestamp_ms=now_ms, event_type=event_type)
                    for i in item_ids
                ],
            ),
            timeout=self._timeout_s,
            metadata=self._metadata,
        )
        return RecordedEvents(response.accepted, list(response.unknown_item_ids))

    def similar_items(
        self, item_id: str, *, k: int = 10, exclude_item_ids: Sequence[str] = ()
    ) -> Recommendations:
        response = self._stub.GetSimilarItems(
            pb.GetSimilarItemsRequest(item_id=item_id, k=k, exclude_item_ids=exclude_item_ids),
            timeout=self._timeout_s,
            metadata=self._metadata,
        )
        return Recommendations(
            _items(response.items),
            response.model_version,
            response.degraded,
            _reason(response.degraded_reason),
            response.degraded_detail,
            [],
        )
