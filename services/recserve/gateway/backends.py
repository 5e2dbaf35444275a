"""gRPC clients for the three backends, each behind an adaptive batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

import grpc

from recserve.client.options import channel_options as client_channel_options
from recserve.client.options import service_config
from recserve.gateway.batcher import AdaptiveBatcher, BatchRejected, DeadlineExceeded
from recserve.gateway.domain import (
    CandidateList,
    CandidateRequest,
    RankRequest,
    ScoredItem,
    StageUnavailable,
    UserState,
    VersionNotLoaded,
)
from recserve.model.filters import ItemFilter
from recserve.runtime.errors import ResourceExhausted
from recserve.v1 import candidates_pb2, embedding_store_pb2, ranking_pb2, types_pb2
from recserve.v1.candidates_pb2_grpc import CandidateServiceStub
from recserve.v1.embedding_store_pb2_grpc import EmbeddingStoreServiceStub
from recserve.v1.ranking_pb2_grpc import RankingServiceStub

QueryT = TypeVar("QueryT")
ResultT = TypeVar("ResultT")

# Idempotent reads only; AppendUserEvents is not retried (a retry could store events twice).
_RETRYABLE = [
    ("recserve.v1.EmbeddingStoreService", "GetUserStates"),
    ("recserve.v1.CandidateService", "SearchCandidates"),
    ("recserve.v1.RankingService", "RankCandidates"),
]


def channel_options(max_message_bytes: int) -> list[tuple[str, object]]:
    """The public client's channel setup (round_robin over the backend pods of a headless
    Service, health checking, retries within a budget), with backoffs sized for a 200 ms budget."""
    config = service_config(_RETRYABLE, initial_backoff_s=0.005, max_backoff_s=0.05)
    return client_channel_options(config, max_message_bytes=max_message_bytes)


def _stage_error(stage: str, exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return VersionNotLoaded(f"{stage}: {exc.details()}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return BatchRejected(f"{stage}: {exc.details()}")
    return StageUnavailable(f"{stage}: {code.name} {exc.details() or ''}".strip())


def _filters(filters: Sequence[ItemFilter]) -> list[types_pb2.ItemFilter]:
    return [
        types_pb2.ItemFilter(feature=f.feature, any_of=sorted(f.any_of), exclude=f.exclude)
        for f in filters
    ]


class GrpcBackends:
    def __init__(
        self,
        embedding_store: grpc.aio.Channel,
        candidates: grpc.aio.Channel,
        ranking: grpc.aio.Channel,
        *,
        max_batch: int,
        max_in_flight: int,
        max_queued: int,
    ):
        self._store = EmbeddingStoreServiceStub(embedding_store)
        self._candidates = CandidateServiceStub(candidates)
        self._ranking = RankingServiceStub(ranking)
        limits = {"max_batch": max_batch, "max_in_flight": max_in_flight, "max_queued": max_queued}
        self._state_batcher: AdaptiveBatcher[str, embedding_store_pb2.UserStateQuery, UserState] = (
            AdaptiveBatcher(self._send_user_states, stage="embedding_store", **limits)
        )
        self._candidate_batcher: AdaptiveBatcher[
            str, candidates_pb2.CandidateQuery, CandidateList
        ] = AdaptiveBatcher(self._send_candidates, stage="candidates", **limits)
        self._rank_batcher: AdaptiveBatcher[str, ranking_pb2.RankQuery, list[ScoredItem]] = (
            AdaptiveBatcher(self._send_rank, stage="ranking", **limits)
        )

    async def _submit(
        self,
        batcher: AdaptiveBatcher[str, QueryT, ResultT],
        stage: str,
        version: str,
        query: QueryT,
        deadline: float,
    ) -> ResultT:
        try:
            return await batcher.submit(version, query, deadline)
        except (DeadlineExceeded, ResourceExhausted, BatchRejected) as exc:
            raise StageUnavailable(f"{stage}: {exc}") from None

    async def user_state(
        self, version: str, user_id: str, recent_item_ids: Sequence[str], deadline: float
    ) -> UserState:
        query = embedding_store_pb2.UserStateQuery(user_id=user_id, recent_item_ids=recent_item_ids)
        return await self._submit(self._state_batcher, "embedding_store", version, query, deadline)

    async def _send_user_states(
        self, version: str, queries: list[embedding_store_pb2.UserStateQuery], timeout: float
    ) -> list[UserState]:
        try:
            response = await self._store.GetUserStates(
                embedding_store_pb2.GetUserStatesRequest(model_version=version, queries=queries),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _stage_error("embedding_store", exc) from None
        return [
            UserState(s.history_item_ids, s.features, s.query_vector_f32, s.unknown_item_ids)
            for s in response.states
        ]

    async def candidates(
        self, version: str, request: CandidateRequest, deadline: float
    ) -> CandidateList:
        query = candidates_pb2.CandidateQuery(
            query_vector_f32=request.query_vector,
            item_id=request.item_id,
            exclude_item_ids=request.exclude_item_ids,
            num_candidates=request.num_candidates,
        )
        return await self._submit(self._candidate_batcher, "candidates", version, query, deadline)

    async def _send_candidates(
        self, version: str, queries: list[candidates_pb2.CandidateQuery], timeout: float
    ) -> list[CandidateList]:
        try:
            response = await self._candidates.SearchCandidates(
                candidates_pb2.SearchCandidatesRequest(model_version=version, queries=queries),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _stage_error("candidates", exc) from None
        return [
            CandidateList(r.item_ids, r.item_indices, r.ann_scores, r.unknown_item_ids)
            for r in response.results
        ]

    async def rank(self, version: str, request: RankRequest, deadline: float) -> list[ScoredItem]:
        query = ranking_pb2.RankQuery(
            features=request.features,
            item_indices=request.item_indices,
            ann_scores=request.ann_scores,
            filters=_filters(request.filters),
            k=request.k,
        )
        return await self._submit(self._rank_batcher, "ranking", version, query, deadline)

    async def _send_rank(
        self, version: str, queries: list[ranking_pb2.RankQuery], timeout: float
    ) -> list[list[ScoredItem]]:
        try:
            response = await self._ranking.RankCandidates(
                ranking_pb2.RankCandidatesRequest(model_version=version, queries=queries),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _stage_error("ranking", exc) from None
        return [
            [ScoredItem(i.item_id, i.score, i.ann_score, i.ranker_score) for i in r.items]
            for r in response.results
        ]

    async def append_events(
        self, user_id: str, item_ids: Sequence[str], timestamps_ms: Sequence[int], deadline: float
    ) -> tuple[int, list[str]]:
        timeout = deadline - asyncio.get_running_loop().time()
        try:
            response = await self._store.AppendUserEvents(
                embedding_store_pb2.AppendUserEventsRequest(
                    user_id=user_id, item_ids=item_ids, timestamps_ms=timestamps_ms
                ),
                timeout=max(timeout, 0.001),
            )
        except grpc.aio.AioRpcError as exc:
            raise StageUnavailable(f"embedding_store: {exc.code().name} {exc.details()}") from None
        return response.accepted, list(response.unknown_item_ids)

    async def probe(self, version: str) -> bool:
        """True when candidates and ranking both have `version` loaded (empty batched calls)."""
        try:
            await self._candidates.SearchCandidates(
                candidates_pb2.SearchCandidatesRequest(model_version=version), timeout=1.0
            )
            await self._ranking.RankCandidates(
                ranking_pb2.RankCandidatesRequest(model_version=version), timeout=1.0
            )
        except grpc.aio.AioRpcError:
            return False
        return True
