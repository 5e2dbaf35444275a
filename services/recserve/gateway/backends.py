"""gRPC clients for the three backends, each behind an adaptive batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

import grpc

from recserve.client.options import channel_options as client_channel_options
from recserve.client.options import service_config
from recserve.gateway.batcher import AdaptiveBatcher, BatchRejected, DeadlineExceeded, SendBatch
from recserve.gateway.domain import (
    CandidateList,
    CandidateRequest,
    RankRequest,
    ScoredItem,
    StageUnavailable,
    UserState,
    VersionNotLoaded,
)
from recserve.model.events import AppendResult, UserEvent
from recserve.runtime import tracing
from recserve.runtime.errors import ResourceExhausted
from recserve.v1 import candidates_pb2, embedding_store_pb2, ranking_pb2
from recserve.v1.candidates_pb2_grpc import CandidateServiceStub
from recserve.v1.embedding_store_pb2_grpc import EmbeddingStoreServiceStub
from recserve.v1.ranking_pb2_grpc import RankingServiceStub

QueryT = TypeVar("QueryT")
ResultT = TypeVar("ResultT")

_STORE = "recserve.v1.EmbeddingStoreService"
_CANDIDATES = "recserve.v1.CandidateService"
_RANKING = "recserve.v1.RankingService"

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
        self._tracer = tracing.tracer()
        self._limits = {
            "max_batch": max_batch, "max_in_flight": max_in_flight, "max_queued": max_queued,
        }  # fmt: skip
        self._state_batcher: AdaptiveBatcher[str, embedding_store_pb2.UserStateQuery, UserState] = (
            self._batcher(self._send_user_states, "embedding_store", _STORE, "GetUserStates")
        )
        self._candidate_batcher: AdaptiveBatcher[
            str, candidates_pb2.CandidateQuery, CandidateList
        ] = self._batcher(self._send_candidates, "candidates", _CANDIDATES, "SearchCandidates")
        self._rank_batcher: AdaptiveBatcher[str, ranking_pb2.RankQuery, list[ScoredItem]] = (
            self._batcher(self._send_rank, "ranking", _RANKING, "RankCandidates")
        )

    def _batcher(
        self, send: SendBatch[str, QueryT, ResultT], stage: str, service: str, method: str
    ) -> AdaptiveBatcher[str, QueryT, ResultT]:
        """A batcher for one stage, tracing each batch as one client call of `service/method`."""
        return AdaptiveBatcher(
            send,
            stage=stage,
            **self._limits,
            tracer=self._tracer,
            span_name=f"{service}/{method}",
            span_attributes=tracing.rpc_attributes(service, method),
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
            response = await tracing.call(
                self._store.GetUserStates,
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
            response = await tracing.call(
                self._candidates.SearchCandidates,
                candidates_pb2.SearchCandidatesRequest(model_version=version, queries=queries),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _stage_error("candidates", exc) from None
        return [
            CandidateList(
                r.item_ids, r.item_indices, r.ann_scores, r.unknown_item_ids, r.cold_start
            )
            for r in response.results
        ]

    async def rank(self, version: str, request: RankRequest, deadline: float) -> list[ScoredItem]:
        query = ranking_pb2.RankQuery(
            features=request.features,
            item_indices=request.item_indices,
            ann_scores=request.ann_scores,
            k=request.k,
            history_item_ids=request.history_item_ids,
        )
        return await self._submit(self._rank_batcher, "ranking", version, query, deadline)

    async def _send_rank(
        self, version: str, queries: list[ranking_pb2.RankQuery], timeout: float
    ) -> list[list[ScoredItem]]:
        try:
            response = await tracing.call(
                self._ranking.RankCandidates,
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
        self, user_id: str, events: Sequence[UserEvent], deadline: float
    ) -> AppendResult:
        timeout = deadline - asyncio.get_running_loop().time()
        try:
            with tracing.client_span(self._tracer, _STORE, "AppendUserEvents"):
                response = await tracing.call(
                    self._store.AppendUserEvents,
                    embedding_store_pb2.AppendUserEventsRequest(
                        user_id=user_id,
                        item_ids=[e.item_id for e in events],
                        timestamps_ms=[e.timestamp_ms for e in events],
                        event_types=[e.event_type for e in events],
                        event_ids=[e.event_id for e in events],
                    ),
                    timeout=max(timeout, 0.001),
                )
        except grpc.aio.AioRpcError as exc:
            raise StageUnavailable(f"embedding_store: {exc.code().name} {exc.details()}") from None
        return AppendResult(response.accepted, list(response.unknown_item_ids), response.duplicates)

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
