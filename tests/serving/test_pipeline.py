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
from recserve.gateway.pipeline import Limits, Pipeline
from recserve.runtime.errors import InvalidArgument, Unavailable

POPULAR = ["p1", "p2", "p3", "p4", "p5"]


class Models:
    def __init__(self, versions: list[str]):
        self.versions = versions

    def serving_versions(self) -> list[str]:
        return self.versions

    def popular(self, version: str) -> list[str]:
        return POPULAR

    def num_candidates(self, version: str) -> int:
        return 3


class Backends:
    def __init__(self) -> None:
        self.fail: dict[str, Exception] = {}
        self.loaded = {"v2", "v1"}
        self.seen_versions: list[tuple[str, str]] = []
        self.history = ["h1", "p1"]

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
        assert request.exclude_item_ids[:2] == ["h1", "p1"] or request.item_id
        return CandidateList(["c1", "c2", "c3"], [1, 2, 3], [0.9, 0.8, 0.7], [])

    async def rank(self, version: str, request: RankRequest, deadline: float) -> list[ScoredItem]:
        self._check("ranking", version)
        assert request.features == {"age": "30", "device": "ios"}
        return [ScoredItem("c3", 0.6, 0.7, 0.6), ScoredItem("c1", 0.5, 0.9, 0.5)][: request.k]

    async def append_events(
        self, user_id: str, item_ids: Sequence[str], ts: Sequence[int], deadline: float
    ) -> tuple[int, list[str]]:
        self._check("embedding_store", "v2")
        return len(item_ids), []


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


def run(pipeline: Pipeline, q: RecommendQuery) -> Recommendation:
    async def go() -> Recommendation:
        return await pipeline.recommend(q, asyncio.get_running_loop().time() + 0.2)

    return asyncio.run(go())


def test_full_path_returns_ranked_items() -> None:
    backends = Backends()
    result = run(Pipeline(backends, Models(["v2", "v1"]), LIMITS), query())
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
    result = run(Pipeline(backends, Models(["v2"]), LIMITS), query())
    assert result.degraded == reason
    assert [i.item_id for i in result.items] == items
    assert f"{stage} down" in result.degraded_detail


def test_cold_start_is_popular_minus_excluded() -> None:
    result = run(
        Pipeline(Backends(), Models(["v2"]), LIMITS),
        query(user_id="cold", exclude_item_ids=["p1"], k=3),
    )
    assert result.degraded == Degraded.COLD_START
    assert [i.item_id for i in result.items] == ["p2", "p3", "p4"]
    assert [i.score for i in result.items] == [1 / 2, 1 / 3, 1 / 4]


def test_version_not_loaded_retries_whole_request_on_previous_version() -> None:
    backends = Backends()
    backends.loaded = {"v1"}
    result = run(Pipeline(backends, Models(["v2", "v1"]), LIMITS), query())
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
        run(Pipeline(Backends(), Models(["v2"]), LIMITS), query(**overrides))


def test_nothing_published_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        run(Pipeline(Backends(), Models([]), LIMITS), query())
