"""Gateway fan-out logic with in-process stand-in backends (pure logic; the real processes are
exercised in tests/integration)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from recserve.gateway.domain import (
    CandidateList,
    CandidateRequest,
    Degraded,
    RankRequest,
    Recommendation,
    RecommendQuery,
    ScoredItem,
    StageUnavailable,
    UserState,
    VersionNotLoaded,
)
from recserve.gateway.finalize import FETCH_MARGIN
from recserve.gateway.pipeline import Limits, Pipeline
from recserve.model.events import AppendResult, UserEvent
from recserve.model.filters import ItemFilter
from recserve.runtime.errors import InvalidArgument, Unavailable
from tests.availability.catalog import StaticCatalog

POPULAR = ["p1", "p2", "p3", "p4", "p5"]


class Models:
    def __init__(self, versions: list[str], num_candidates: int = 3):
        self.versions = versions
        self._num_candidates = num_candidates

    def serving_versions(self) -> list[str]:
        return self.versions

    def popular(self, version: str) -> list[str]:
        return POPULAR

    def num_candidates(self, version: str) -> int:
        return self._num_candidates


class Backends:
    def __init__(self) -> None:
        self.fail: dict[str, Exception] = {}
        self.loaded = {"v2", "v1"}
        self.seen_versions: list[tuple[str, str]] = []
        self.history = ["h1", "p1"]
        self.requests: list[CandidateRequest | RankRequest] = []

    def _check(self, stage: str, version: str) -> None:
        self.seen_versions.append((stage, version))
        if stage in self.fail:
            raise self.fail[stage]
        if version not in self.loaded:
            raise VersionNotLoaded(version)

    async def user_state(
        self, version: str, user_id: str, recent: Sequence[str], deadline: float
    ) -> UserState:
        self._check("embedding_store", version)
        history = [*self.history, *recent] if user_id != "cold" else list(recent)
        return UserState(history, {"age": "30"}, b"\x00" * 8 if history else b"", [])

    async def candidates(
        self, version: str, request: CandidateRequest, deadline: float
    ) -> CandidateList:
        self._check("candidates", version)
        self.requests.append(request)
        assert request.exclude_item_ids[:2] == ["h1", "p1"] or request.item_id
        return CandidateList(["c1", "c2", "c3"], [1, 2, 3], [0.9, 0.8, 0.7], [])

    async def rank(self, version: str, request: RankRequest, deadline: float) -> list[ScoredItem]:
        self._check("ranking", version)
        self.requests.append(request)
        assert request.features == {"age": "30", "device": "ios"}
        ranked = [
            ScoredItem("c3", 0.6, 0.7, 0.6),
            ScoredItem("c1", 0.5, 0.9, 0.5),
            ScoredItem("c2", 0.4, 0.8, 0.4),
        ]
        return ranked[: request.k]

    async def append_events(
        self, user_id: str, events: Sequence[UserEvent], deadline: float
    ) -> AppendResult:
        self._check("embedding_store", "v2")
        return AppendResult(len(events), [], 0)


LIMITS = Limits(
    max_k=50, max_recent_items=5, max_exclude=5, max_events=5, num_candidates=0, reserve_s=0.01
)


BASE_QUERY = RecommendQuery(
    user_id="u1",
    recent_item_ids=[],
    context={"device": "ios"},
    k=2,
    exclude_item_ids=[],
    filters=[],
)


def query(**overrides: Any) -> RecommendQuery:
    return dataclasses.replace(BASE_QUERY, **overrides)


def pipeline(
    backends: Backends | None = None,
    versions: tuple[str, ...] = ("v2",),
    catalog: StaticCatalog | None = None,
    num_candidates: int = 3,
) -> Pipeline:
    return Pipeline(
        backends or Backends(),
        Models(list(versions), num_candidates),
        LIMITS,
        catalog or StaticCatalog(),
    )


def run(pipeline: Pipeline, q: RecommendQuery) -> Recommendation:
    async def go() -> Recommendation:
        return await pipeline.recommend(q, asyncio.get_running_loop().time() + 0.2)

    return asyncio.run(go())


def test_full_path_returns_ranked_items() -> None:
    backends = Backends()
    result = run(pipeline(backends, ("v2", "v1")), query())
    assert [i.item_id for i in result.items] == ["c3", "c1"]
    assert result.model_version == "v2" and result.degraded is None
    assert {v for _, v in backends.seen_versions} == {"v2"}


@pytest.mark.parametrize(
    ("stage", "reason", "items"),
    [
        ("ranking", Degraded.RANKING_UNAVAILABLE, ["c1", "c2"]),
        ("candidates", Degraded.CANDIDATES_UNAVAILABLE, ["p2", "p3"]),
        ("embedding_store", Degraded.EMBEDDING_STORE_UNAVAILABLE, ["p1", "p2"]),
    ],
)
def test_stage_failure_degrades(stage: str, reason: Degraded, items: list[str]) -> None:
    backends = Backends()
    backends.fail[stage] = StageUnavailable(f"{stage} down")
    result = run(pipeline(backends), query())
    assert result.degraded == reason
    assert [i.item_id for i in result.items] == items
    assert f"{stage} down" in result.degraded_detail


def test_cold_start_is_popular_minus_excluded() -> None:
    result = run(
        pipeline(),
        query(user_id="cold", exclude_item_ids=["p1"], k=3),
    )
    assert result.degraded == Degraded.COLD_START
    assert [i.item_id for i in result.items] == ["p2", "p3", "p4"]
    assert [i.score for i in result.items] == [1 / 2, 1 / 3, 1 / 4]


def test_version_not_loaded_retries_whole_request_on_previous_version() -> None:
    backends = Backends()
    backends.loaded = {"v1"}
    result = run(pipeline(backends, ("v2", "v1")), query())
    assert result.model_version == "v1" and result.degraded is None
    # Every stage that answered did so for v1.
    assert backends.seen_versions[-3:] == [
        ("embedding_store", "v1"),
        ("candidates", "v1"),
        ("ranking", "v1"),
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"k": 0}, "k=0"),
        ({"k": 51}, "k=51"),
        ({"recent_item_ids": ["a"] * 6}, "6 recent_item_ids in one request; the limit is 5"),
        ({"exclude_item_ids": ["a"] * 6}, "6 exclude_item_ids in one request; the limit is 5"),
        ({"recent_item_ids": [""]}, "empty"),
        ({"user_id": "é" * 200}, "longer than"),
    ],
)
def test_invalid_requests(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        run(pipeline(), query(**overrides))


def test_nothing_published_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        run(pipeline(versions=()), query())


def similar(p: Pipeline, item_id: str, k: int, filters: list[ItemFilter]) -> Recommendation:
    async def go() -> Recommendation:
        return await p.similar_items(
            item_id, k, [], filters, asyncio.get_running_loop().time() + 0.2
        )

    return asyncio.run(go())


# Per path: the failing stage (None: full pipeline) and the query; each answer would hold
# "c1"/"p2" were it available.
PATHS = [
    pytest.param(None, "u1", id="full"),
    pytest.param("ranking", "u1", id="ann-order"),
    pytest.param("candidates", "u1", id="popular-candidates-down"),
    pytest.param("embedding_store", "u1", id="popular-store-down"),
    pytest.param(None, "cold", id="cold-start"),
]


@pytest.mark.parametrize(("stage", "user"), PATHS)
def test_taken_down_items_are_absent_on_every_path(stage: str | None, user: str) -> None:
    backends = Backends()
    if stage:
        backends.fail[stage] = StageUnavailable(f"{stage} down")
    catalog = StaticCatalog(unavailable={"c1", "p2"})
    result = run(pipeline(backends, catalog=catalog), query(user_id=user, k=2))
    ids = [i.item_id for i in result.items]
    assert len(ids) == 2 and not set(ids) & catalog.unavailable, ids


@pytest.mark.parametrize(("stage", "user"), PATHS)
def test_attribute_filters_hold_on_every_path(stage: str | None, user: str) -> None:
    backends = Backends()
    if stage:
        backends.fail[stage] = StageUnavailable(f"{stage} down")
    red = {"c2", "p3", "p5"}
    catalog = StaticCatalog(
        {i: {"color": "red" if i in red else "blue"} for i in [*POPULAR, "c1", "c2", "c3"]}
    )
    only_red = ItemFilter("color", frozenset({"red"}), exclude=False)
    result = run(pipeline(backends, catalog=catalog), query(user_id=user, k=2, filters=[only_red]))
    assert result.items and {i.item_id for i in result.items} <= red
    assert "filters not applied" not in result.degraded_detail


def test_backends_are_asked_for_more_than_k() -> None:
    backends = Backends()
    run(pipeline(backends), query(k=2))
    candidates, ranking = backends.requests
    assert isinstance(candidates, CandidateRequest) and isinstance(ranking, RankRequest)
    # The version ranks 3 candidates, fewer than k plus the margin.
    assert candidates.num_candidates == 2 + FETCH_MARGIN
    assert ranking.k == 3  # every candidate that came back (fewer than k + margin)
    backends.requests.clear()
    run(pipeline(backends, num_candidates=40), query(k=2))
    assert [r.num_candidates for r in backends.requests if isinstance(r, CandidateRequest)] == [40]


def test_similar_items_drop_taken_down_and_filtered_neighbours() -> None:
    backends = Backends()
    catalog = StaticCatalog({"c2": {"color": "red"}, "c3": {"color": "red"}}, unavailable={"c3"})
    result = similar(pipeline(backends, catalog=catalog, num_candidates=40), "c9", 2, [])
    assert [i.item_id for i in result.items] == ["c1", "c2"]
    only_red = ItemFilter("color", frozenset({"red"}), exclude=False)
    result = similar(pipeline(backends, catalog=catalog, num_candidates=40), "c9", 2, [only_red])
    assert [i.item_id for i in result.items] == ["c2"]
    # With a filter the search goes as deep as a recommendation's candidate list.
    assert [r.num_candidates for r in backends.requests if isinstance(r, CandidateRequest)] == [
        2 + FETCH_MARGIN,
        40,
    ]


def test_similar_items_fallback_filters_popular_items() -> None:
    backends = Backends()
    backends.fail["candidates"] = StageUnavailable("candidates down")
    catalog = StaticCatalog(unavailable={"p1"})
    result = similar(pipeline(backends, catalog=catalog), "p2", 2, [])
    assert result.degraded == Degraded.CANDIDATES_UNAVAILABLE
    assert [i.item_id for i in result.items] == ["p3", "p4"]


def test_invalid_filter_names_the_field() -> None:
    empty = ItemFilter("", frozenset({"x"}), exclude=False)
    with pytest.raises(InvalidArgument, match=r"filters\[0\].feature"):
        run(pipeline(), query(filters=[empty]))
