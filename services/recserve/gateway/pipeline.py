"""The fan-out: embedding store → candidates → ranking → top-k, degrading instead of failing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from recserve.gateway.domain import (
    Backends,
    CandidateRequest,
    Degraded,
    ModelVersions,
    RankRequest,
    Recommendation,
    RecommendQuery,
    ScoredItem,
    StageUnavailable,
    VersionNotLoaded,
)
from recserve.runtime.errors import InvalidArgument, Unavailable, require_at_most
from recserve.runtime.ids import require_ids
from recserve.runtime.metrics import DEGRADED, STAGE_DURATION

_STAGE_EMBEDDING = STAGE_DURATION.labels("embedding_store")
_STAGE_CANDIDATES = STAGE_DURATION.labels("candidates")
_STAGE_RANKING = STAGE_DURATION.labels("ranking")
_DEGRADED = {reason: DEGRADED.labels(reason.value) for reason in Degraded}


@dataclass(frozen=True)
class Limits:
    max_k: int
    max_recent_items: int
    max_exclude: int
    max_events: int
    # 0: what the model version was evaluated with (its meta in Redis).
    num_candidates: int
    # Time kept back from each stage so a fallback can still be answered in budget.
    reserve_s: float


class Pipeline:
    def __init__(self, backends: Backends, models: ModelVersions, limits: Limits):
        self._backends = backends
        self._models = models
        self._limits = limits

    def _num_candidates(self, version: str) -> int:
        return self._limits.num_candidates or self._models.num_candidates(version)

    def validate(self, query: RecommendQuery) -> None:
        limits = self._limits
        if not 1 <= query.k <= limits.max_k:
            raise InvalidArgument(f"k={query.k} must be in [1, {limits.max_k}]")
        require_at_most(len(query.recent_item_ids), limits.max_recent_items, "recent_item_ids")
        require_at_most(len(query.exclude_item_ids), limits.max_exclude, "exclude_item_ids")
        require_ids(query.recent_item_ids, "recent_item_ids")
        require_ids(query.exclude_item_ids, "exclude_item_ids")
        if query.user_id:
            require_ids([query.user_id], "user_id")
        for f in query.filters:
            if not f.feature:
                raise InvalidArgument("filters[].feature must not be empty")

    async def recommend(self, query: RecommendQuery, deadline: float) -> Recommendation:
        self.validate(query)
        versions = self._models.serving_versions()
        if not versions:
            raise Unavailable("no model version is published yet")
        for attempt, version in enumerate(versions):
            try:
                return await self._recommend(query, version, deadline)
            except VersionNotLoaded:
                # A backend has not loaded the new version yet: serve the whole request from the
                # previous one, so no response mixes versions.
                if attempt == len(versions) - 1:
                    return self._popular(
                        query,
                        versions[-1],
                        [],
                        Degraded.CANDIDATES_UNAVAILABLE,
                        "no backend has a common model version loaded",
                    )
        raise AssertionError("unreachable")

    async def _recommend(
        self, query: RecommendQuery, version: str, deadline: float
    ) -> Recommendation:
        reserve = self._limits.reserve_s
        started = time.perf_counter()
        if not query.user_id and not query.recent_item_ids:
            return self._popular(
                query, version, [], Degraded.COLD_START, "no user_id or recent items"
            )
        try:
            state = await self._backends.user_state(
                version, query.user_id, query.recent_item_ids, deadline - reserve
            )
        except StageUnavailable as exc:
            return self._popular(query, version, [], Degraded.EMBEDDING_STORE_UNAVAILABLE, str(exc))
        finally:
            _STAGE_EMBEDDING.observe(time.perf_counter() - started)
        unknown = list(state.unknown_item_ids)
        seen = [*state.history, *query.exclude_item_ids]
        if not state.query_vector:
            return self._popular(
                query, version, seen, Degraded.COLD_START, "no known history", unknown
            )

        started = time.perf_counter()
        try:
            candidates = await self._backends.candidates(
                version,
                CandidateRequest(state.query_vector, "", seen, self._num_candidates(version)),
                deadline - reserve,
            )
        except StageUnavailable as exc:
            return self._popular(
                query, version, seen, Degraded.CANDIDATES_UNAVAILABLE, str(exc), unknown
            )
        finally:
            _STAGE_CANDIDATES.observe(time.perf_counter() - started)

        started = time.perf_counter()
        features = {**state.features, **query.context}
        try:
            items = await self._backends.rank(
                version,
                RankRequest(
                    features, candidates.item_indices, candidates.ann_scores, query.filters, query.k
                ),
                deadline - reserve / 2,
            )
        except StageUnavailable as exc:
            detail = str(exc) + ("; filters not applied" if query.filters else "")
            _DEGRADED[Degraded.RANKING_UNAVAILABLE].inc()
            items = [
                ScoredItem(item_id, score, ann_score=score)
                for item_id, score in zip(
                    candidates.item_ids[: query.k], candidates.ann_scores[: query.k], strict=True
                )
            ]
            return Recommendation(items, version, Degraded.RANKING_UNAVAILABLE, detail, unknown)
        finally:
            _STAGE_RANKING.observe(time.perf_counter() - started)
        return Recommendation(items, version, unknown_item_ids=unknown)

    def _popular(
        self,
        query: RecommendQuery,
        version: str,
        seen: Sequence[str],
        reason: Degraded,
        detail: str,
        unknown: list[str] | None = None,
    ) -> Recommendation:
        _DEGRADED[reason].inc()
        skip = set(seen) | set(query.exclude_item_ids)
        popular = self._models.popular(version)
        items: list[ScoredItem] = []
        for rank, item_id in enumerate(popular):
            if item_id in skip:
                continue
            # A score that orders like the popularity list and stays in (0, 1].
            items.append(ScoredItem(item_id, 1.0 / (1 + rank)))
            if len(items) == query.k:
                break
        if query.filters:
            detail += "; filters not applied"
        return Recommendation(items, version, reason, detail, unknown or [])

    async def similar_items(
        self, item_id: str, k: int, exclude_item_ids: Sequence[str], deadline: float
    ) -> Recommendation:
        require_ids([item_id], "item_id")
        require_ids(exclude_item_ids, "exclude_item_ids")
        if not 1 <= k <= self._limits.max_k:
            raise InvalidArgument(f"k={k} must be in [1, {self._limits.max_k}]")
        require_at_most(len(exclude_item_ids), self._limits.max_exclude, "exclude_item_ids")
        versions = self._models.serving_versions()
        if not versions:
            raise Unavailable("no model version is published yet")
        for version in versions:
            try:
                result = await self._backends.candidates(
                    version, CandidateRequest(b"", item_id, exclude_item_ids, k), deadline
                )
            except VersionNotLoaded:
                continue
            except StageUnavailable as exc:
                query = RecommendQuery("", [], {}, k, exclude_item_ids, [])
                return self._popular(
                    query, version, [item_id], Degraded.CANDIDATES_UNAVAILABLE, str(exc)
                )
            if item_id in result.unknown_item_ids:
                raise InvalidArgument(f"item_id {item_id!r} is not in model version {version}")
            items = [
                ScoredItem(i, s, ann_score=s)
                for i, s in zip(result.item_ids, result.ann_scores, strict=True)
            ]
            return Recommendation(items, version)
        raise Unavailable("no backend has a common model version loaded")

    async def record_events(
        self, user_id: str, item_ids: Sequence[str], timestamps_ms: Sequence[int], deadline: float
    ) -> tuple[int, list[str]]:
        require_ids([user_id], "user_id")
        if not item_ids:
            raise InvalidArgument("events must not be empty")
        require_at_most(len(item_ids), self._limits.max_events, "events")
        require_ids(item_ids, "events[].item_id")
        for ts in timestamps_ms:
            if ts < 0:
                raise InvalidArgument(f"events[].timestamp_ms={ts} must be >= 0")
        try:
            return await self._backends.append_events(user_id, item_ids, timestamps_ms, deadline)
        except StageUnavailable as exc:
            # Never acknowledge a write we cannot confirm. It may still have been applied, so a
            # retry can record the events twice (at-least-once).
            raise Unavailable(
                f"events not confirmed stored (a retry may record them twice): {exc}"
            ) from None
