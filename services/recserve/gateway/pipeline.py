"""The fan-out: embedding store → candidates → ranking → finalize, degrading instead of failing.

Every answer, fallbacks included, goes through `finalize` (live availability, exclusions,
filters on catalog attributes, boosts, diversity, top k) over a list longer than k."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from recserve.gateway.cold_start import count_served, place_cold, split_cold
from recserve.gateway.domain import (
    Backends,
    CandidateRequest,
    CatalogLookup,
    Degraded,
    ModelVersions,
    RankRequest,
    Recommendation,
    RecommendQuery,
    ScoredItem,
    StageUnavailable,
    VersionNotLoaded,
)
from recserve.gateway.finalize import FETCH_MARGIN, FinalizeQuery, finalize
from recserve.model.events import AppendResult, UserEvent, validate_events
from recserve.model.features import MAX_HISTORY as MAX_RANK_HISTORY
from recserve.model.filters import ItemFilter
from recserve.model.objectives import validate_objectives
from recserve.runtime.errors import InvalidArgument, Unavailable, require_at_most
from recserve.runtime.ids import require_ids
from recserve.runtime.metrics import DEGRADED, STAGE_DURATION

_STAGE_EMBEDDING = STAGE_DURATION.labels("embedding_store")
_STAGE_CANDIDATES = STAGE_DURATION.labels("candidates")
_STAGE_RANKING = STAGE_DURATION.labels("ranking")
_DEGRADED = {reason: DEGRADED.labels(reason.value) for reason in Degraded}
# Recommend / GetSimilarItems with k unset (0) return this many items (the API's documented default).
DEFAULT_K = 10
# Over-fetching never asks the candidates service for more than its default
# RECSERVE_MAX_CANDIDATES (the gateway's RECSERVE_MAX_K is at most this too).
MAX_FETCH = 500


def _fetch(k: int) -> int:
    return min(k + FETCH_MARGIN, max(MAX_FETCH, k))


def _require_filters(filters: Sequence[ItemFilter]) -> None:
    for i, f in enumerate(filters):
        if not f.feature:
            raise InvalidArgument(
                f"filters[{i}].feature must not be empty", field=f"filters[{i}].feature"
            )


def _popular_items(popular: Sequence[str]) -> Iterator[ScoredItem]:
    # A score that orders like the popularity list and stays in (0, 1].
    return (ScoredItem(item_id, 1.0 / (1 + rank)) for rank, item_id in enumerate(popular))


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
    def __init__(
        self,
        backends: Backends,
        models: ModelVersions,
        limits: Limits,
        catalog: CatalogLookup,
    ):
        self._backends = backends
        self._models = models
        self._limits = limits
        self._catalog = catalog

    def _num_candidates(self, version: str, k: int) -> int:
        """The version's candidate count, or k plus the margin when that is more."""
        wanted = self._limits.num_candidates or self._models.num_candidates(version)
        return max(min(wanted, MAX_FETCH), _fetch(k))

    def validate(self, query: RecommendQuery) -> None:
        limits = self._limits
        if not 1 <= query.k <= limits.max_k:
            raise InvalidArgument(f"k={query.k} must be in [1, {limits.max_k}]", field="k")
        require_at_most(len(query.recent_item_ids), limits.max_recent_items, "recent_item_ids")
        require_at_most(len(query.exclude_item_ids), limits.max_exclude, "exclude_item_ids")
        require_ids(query.recent_item_ids, "recent_item_ids")
        require_ids(query.exclude_item_ids, "exclude_item_ids")
        if query.user_id:
            require_ids([query.user_id], "user_id")
        _require_filters(query.filters)
        validate_objectives(query.boosts, query.diversity)

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
        final = self._final(query, seen)

        started = time.perf_counter()
        try:
            candidates = await self._backends.candidates(
                version,
                CandidateRequest(
                    state.query_vector, "", seen, self._num_candidates(version, query.k)
                ),
                deadline - reserve,
            )
        except StageUnavailable as exc:
            return self._popular(
                query, version, seen, Degraded.CANDIDATES_UNAVAILABLE, str(exc), unknown
            )
        finally:
            _STAGE_CANDIDATES.observe(time.perf_counter() - started)
        candidates, cold = split_cold(candidates)

        started = time.perf_counter()
        features = {**state.features, **query.context}
        count = len(candidates.item_indices)
        # The whole ranked list when finalize may drop or reorder many of its items.
        rank_k = max(1, count if final.needs_long_list else min(count, _fetch(query.k)))
        try:
            ranked = await self._backends.rank(
                version,
                RankRequest(
                    features,
                    candidates.item_indices,
                    candidates.ann_scores,
                    rank_k,
                    state.history[-MAX_RANK_HISTORY:],
                ),
                deadline - reserve / 2,
            )
        except StageUnavailable as exc:
            _DEGRADED[Degraded.RANKING_UNAVAILABLE].inc()
            ann_order = (
                ScoredItem(item_id, score, ann_score=score)
                for item_id, score in zip(candidates.item_ids, candidates.ann_scores, strict=True)
            )
            ann_items = finalize(place_cold(list(ann_order), cold), final, self._catalog)
            count_served(ann_items, {item.item_id for _, item in cold}, self._catalog)
            return Recommendation(
                ann_items,
                version,
                Degraded.RANKING_UNAVAILABLE,
                str(exc),
                unknown,
            )
        finally:
            _STAGE_RANKING.observe(time.perf_counter() - started)
        items = finalize(place_cold(ranked, cold), final, self._catalog)
        count_served(items, {item.item_id for _, item in cold}, self._catalog)
        return Recommendation(items, version, unknown_item_ids=unknown)

    @staticmethod
    def _final(query: RecommendQuery, seen: Sequence[str]) -> FinalizeQuery:
        return FinalizeQuery(
            query.k, query.filters, {*seen, *query.exclude_item_ids}, query.boosts, query.diversity
        )

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
        # The whole popular list, read lazily: filters can skip far past the first k.
        items = finalize(
            _popular_items(self._models.popular(version)),
            self._final(query, seen),
            self._catalog,
        )
        return Recommendation(items, version, reason, detail, unknown or [])

    async def similar_items(
        self,
        item_id: str,
        k: int,
        exclude_item_ids: Sequence[str],
        filters: Sequence[ItemFilter],
        deadline: float,
    ) -> Recommendation:
        require_ids([item_id], "item_id")
        require_ids(exclude_item_ids, "exclude_item_ids")
        if not 1 <= k <= self._limits.max_k:
            raise InvalidArgument(f"k={k} must be in [1, {self._limits.max_k}]", field="k")
        require_at_most(len(exclude_item_ids), self._limits.max_exclude, "exclude_item_ids")
        _require_filters(filters)
        versions = self._models.serving_versions()
        if not versions:
            raise Unavailable("no model version is published yet")
        query = RecommendQuery("", [], {}, k, exclude_item_ids, filters)
        final = self._final(query, [item_id])
        for version in versions:
            # Filters may drop most neighbours: then as many as a recommendation ranks.
            wanted = self._num_candidates(version, k) if filters else _fetch(k)
            try:
                result = await self._backends.candidates(
                    version, CandidateRequest(b"", item_id, exclude_item_ids, wanted), deadline
                )
            except VersionNotLoaded:
                continue
            except StageUnavailable as exc:
                return self._popular(
                    query, version, [item_id], Degraded.CANDIDATES_UNAVAILABLE, str(exc)
                )
            if item_id in result.unknown_item_ids:
                raise InvalidArgument(f"item_id {item_id!r} is not in model version {version}")
            neighbours = (
                ScoredItem(i, s, ann_score=s)
                for i, s in zip(result.item_ids, result.ann_scores, strict=True)
            )
            items = finalize(neighbours, final, self._catalog)
            count_served(
                items,
                {i for i, c in zip(result.item_ids, result.cold_start, strict=False) if c},
                self._catalog,
            )
            return Recommendation(items, version)
        raise Unavailable("no backend has a common model version loaded")

    async def record_events(
        self, user_id: str, events: Sequence[UserEvent], deadline: float
    ) -> AppendResult:
        require_ids([user_id], "user_id")
        if not events:
            raise InvalidArgument("events must not be empty", field="events")
        require_at_most(len(events), self._limits.max_events, "events")
        validate_events(events, lambda index, attribute: f"events[{index}].{attribute}")
        try:
            return await self._backends.append_events(user_id, events, deadline)
        except StageUnavailable as exc:
            # Never acknowledge a write we cannot confirm. It may still have been applied: a
            # retry stores events with an event_id once, events without one possibly twice.
            raise Unavailable(
                "events not confirmed stored (retrying stores those with an event_id once, "
                f"others possibly twice): {exc}"
            ) from None
