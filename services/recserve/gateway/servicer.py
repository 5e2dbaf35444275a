"""RecommenderService: protobuf ⇄ domain."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from recserve.gateway.domain import Degraded, Recommendation, RecommendQuery
from recserve.gateway.pipeline import DEFAULT_K, Pipeline
from recserve.model.events import UserEvent
from recserve.model.filters import ItemFilter
from recserve.model.objectives import Boost, Diversity
from recserve.runtime.metrics import QUERIES, STAGE_DURATION
from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import recommender_pb2 as pb
from recserve.v1 import types_pb2

_REASONS = {
    None: types_pb2.DEGRADED_REASON_UNSPECIFIED,
    Degraded.COLD_START: types_pb2.DEGRADED_REASON_COLD_START,
    Degraded.RANKING_UNAVAILABLE: types_pb2.DEGRADED_REASON_RANKING_UNAVAILABLE,
    Degraded.CANDIDATES_UNAVAILABLE: types_pb2.DEGRADED_REASON_CANDIDATES_UNAVAILABLE,
    Degraded.EMBEDDING_STORE_UNAVAILABLE: types_pb2.DEGRADED_REASON_EMBEDDING_STORE_UNAVAILABLE,
}
_STAGE_TOTAL = STAGE_DURATION.labels("total")


def _filters(filters: Sequence[types_pb2.ItemFilter]) -> list[ItemFilter]:
    return [ItemFilter(f.feature, frozenset(f.any_of), f.exclude) for f in filters]


def _diversity(request: pb.RecommendRequest) -> Diversity | None:
    if not request.HasField("diversity"):
        return None
    d = request.diversity
    return Diversity(d.attribute, d.max_per_value, d.mmr_lambda)


def _items(result: Recommendation, stage_scores: bool) -> list[types_pb2.ScoredItem]:
    if stage_scores:
        return [
            types_pb2.ScoredItem(
                item_id=i.item_id, score=i.score, ann_score=i.ann_score, ranker_score=i.ranker_score
            )
            for i in result.items
        ]
    return [types_pb2.ScoredItem(item_id=i.item_id, score=i.score) for i in result.items]


class RecommenderServicer:
    def __init__(
        self, pipeline: Pipeline, *, budget_s: float, auth_token: str | None, max_in_flight: int
    ):
        self._pipeline = pipeline
        self._budget_s = budget_s
        self._auth_token = auth_token
        self._max_in_flight = max_in_flight

    def _deadline(self, context: RpcContext) -> float:
        budget = self._budget_s
        if context.time_remaining is not None:
            budget = min(budget, context.time_remaining)
        return asyncio.get_running_loop().time() + budget

    async def recommend(
        self, request: pb.RecommendRequest, context: RpcContext
    ) -> pb.RecommendResponse:
        QUERIES.inc()
        deadline = self._deadline(context)
        query = RecommendQuery(
            user_id=request.user_id,
            recent_item_ids=request.recent_item_ids,
            context=request.context,
            k=request.k or DEFAULT_K,
            exclude_item_ids=request.exclude_item_ids,
            filters=_filters(request.filters),
            boosts=[Boost(b.numeric_attribute, b.weight) for b in request.boosts],
            diversity=_diversity(request),
        )
        with _STAGE_TOTAL.time():
            result = await self._pipeline.recommend(query, deadline)
        return pb.RecommendResponse(
            items=_items(result, request.include_stage_scores),
            model_version=result.model_version,
            degraded=result.degraded is not None,
            degraded_reason=_REASONS[result.degraded],
            degraded_detail=result.degraded_detail,
            unknown_item_ids=result.unknown_item_ids,
        )

    async def record_events(
        self, request: pb.RecordEventsRequest, context: RpcContext
    ) -> pb.RecordEventsResponse:
        result = await self._pipeline.record_events(
            request.user_id,
            [
                UserEvent(e.item_id, e.timestamp_ms, e.event_type, e.event_id)
                for e in request.events
            ],
            self._deadline(context),
        )
        return pb.RecordEventsResponse(
            accepted=result.accepted,
            unknown_item_ids=result.unknown_item_ids,
            duplicates=result.duplicates,
        )

    async def get_similar_items(
        self, request: pb.GetSimilarItemsRequest, context: RpcContext
    ) -> pb.GetSimilarItemsResponse:
        result = await self._pipeline.similar_items(
            request.item_id,
            request.k or DEFAULT_K,
            request.exclude_item_ids,
            _filters(request.filters),
            self._deadline(context),
        )
        return pb.GetSimilarItemsResponse(
            items=_items(result, True),
            model_version=result.model_version,
            degraded=result.degraded is not None,
            degraded_reason=_REASONS[result.degraded],
            degraded_detail=result.degraded_detail,
        )

    def service(self) -> Service:
        return Service(
            pb.DESCRIPTOR.services_by_name["RecommenderService"],
            [
                Method("Recommend", pb.RecommendRequest, self.recommend),
                Method("RecordEvents", pb.RecordEventsRequest, self.record_events),
                Method("GetSimilarItems", pb.GetSimilarItemsRequest, self.get_similar_items),
            ],
            auth_token=self._auth_token,
            max_in_flight=self._max_in_flight,
        )
