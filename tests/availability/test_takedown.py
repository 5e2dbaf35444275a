"""A takedown holds on every answer path (real Redis, the four real service processes).

The item the stack ranks first for a user, and the first cold-start item, are taken down under
concurrent load; from SetAvailability's return plus the documented staleness bound on, no
response carries them: full pipeline, cold start, GetSimilarItems of a neighbour, and every
fallback while each backend is stopped (SIGSTOP) or killed (SIGKILL). Filters on catalog
attributes hold on the fallbacks too. Back in stock brings the item back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
import redis.asyncio as aioredis

from recserve.catalog import CatalogItem, CatalogStore
from recserve.devstack import Stack
from recserve.devstack.stack import wait_serving
from recserve.model import load_bundle
from recserve.v1 import candidates_pb2, types_pb2
from recserve.v1 import recommender_pb2 as pb
from recserve.v1.candidates_pb2_grpc import CandidateServiceStub
from recserve.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.integration.conftest import start_stack, train

# Documented bound on how long a catalog write takes to reach every serving process.
STALENESS_S = 1.0
SHELF_A = types_pb2.ItemFilter(feature="shelf", any_of=["a"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    bundles = tmp_path_factory.mktemp("bundles")
    train(bundles)
    stack = start_stack(tmp_path_factory.mktemp("run"), bundles)
    yield stack
    stack.down()


def catalog_write(stack: Stack, write: Callable[[CatalogStore], object]) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(stack.admin_redis_url, socket_timeout=5)
        try:
            await write(CatalogStore(client))  # type: ignore[misc]
        finally:
            await client.aclose()

    asyncio.run(go())


def set_availability(stack: Stack, ids: list[str], available: bool) -> None:
    catalog_write(stack, lambda store: store.set_availability(ids, available))


def first_user(stack: Stack) -> str:
    import redis

    key = next(
        redis.Redis.from_url(stack.admin_redis_url).scan_iter(match="recserve:user:*:events")
    )
    return str(key.decode().split("{", 1)[1].split("}", 1)[0])


@dataclass
class Gateway:
    stub: RecommenderServiceStub

    def recommend(self, user: str, *filters: types_pb2.ItemFilter) -> pb.RecommendResponse:
        request = pb.RecommendRequest(user_id=user, k=10, filters=filters)
        response: pb.RecommendResponse = self.stub.Recommend(request, timeout=5)
        return response

    def similar(self, item: str, *filters: types_pb2.ItemFilter) -> pb.GetSimilarItemsResponse:
        request = pb.GetSimilarItemsRequest(item_id=item, k=10, filters=filters)
        response: pb.GetSimilarItemsResponse = self.stub.GetSimilarItems(request, timeout=5)
        return response


def ids(response: pb.RecommendResponse | pb.GetSimilarItemsResponse) -> list[str]:
    return [i.item_id for i in response.items]


@dataclass
class Load:
    """Threads calling every kind of request; records (start time, kind, item ids)."""

    address: str
    calls: dict[str, Callable[[Gateway], list[str]]]
    threads: int = 4
    seen: list[tuple[float, str, list[str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self, offset: int) -> None:
        with grpc.insecure_channel(self.address) as channel:
            gateway = Gateway(RecommenderServiceStub(channel))
            kinds = list(self.calls)
            i = offset
            while not self._stop.is_set():
                kind = kinds[i % len(kinds)]
                started = time.monotonic()
                try:
                    self.seen.append((started, kind, self.calls[kind](gateway)))
                except grpc.RpcError as exc:
                    self.errors.append(f"{kind}: {exc.code().name} {exc.details()}")
                i += 1

    def __enter__(self) -> Load:
        self._workers = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(10)


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[Gateway]:
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        yield Gateway(RecommenderServiceStub(channel))


@pytest.fixture(scope="module")
def shelves(stack: Stack) -> dict[str, str]:
    """Catalog attribute `shelf` ("a"/"b", alternating) on every item of the bundle."""
    bundle_dir = stack.newest_bundle()
    assert bundle_dir is not None
    item_ids = load_bundle(bundle_dir, parts=set()).item_ids
    shelf = {item: "ab"[n % 2] for n, item in enumerate(item_ids)}
    catalog_write(
        stack,
        lambda store: store.upsert([CatalogItem(i, {"shelf": s}) for i, s in shelf.items()]),
    )
    time.sleep(STALENESS_S)
    return shelf


@dataclass(frozen=True)
class Scene:
    user: str
    top: str  # the user's first item
    cold_top: str  # the first cold-start item
    neighbour: str  # an item whose neighbours include `top`

    @property
    def taken_down(self) -> frozenset[str]:
        return frozenset({self.top, self.cold_top})


@pytest.fixture(scope="module")
def scene(stack: Stack, gateway: Gateway, shelves: dict[str, str]) -> Iterator[Scene]:
    """Takes down the user's first item and the first cold-start item under load; checks the
    takedown holds on the healthy stack, leaves it in place for the fault tests."""
    user = first_user(stack)
    top = ids(gateway.recommend(user))[0]
    cold = gateway.recommend("")
    assert cold.degraded_reason == types_pb2.DEGRADED_REASON_COLD_START
    cold_top = ids(cold)[0]
    # A neighbour whose own neighbours include the item, so GetSimilarItems would show it.
    neighbour = next(n for n in ids(gateway.similar(top)) if top in ids(gateway.similar(n)))
    down = frozenset({top, cold_top})
    calls: dict[str, Callable[[Gateway], list[str]]] = {
        "user": lambda g: ids(g.recommend(user)),
        "cold": lambda g: ids(g.recommend("")),
        "similar": lambda g: ids(g.similar(neighbour)),
        "filtered": lambda g: ids(g.recommend(user, SHELF_A)),
    }
    with Load(stack.address("gateway"), calls) as load:
        time.sleep(0.5)
        set_availability(stack, sorted(down), False)
        returned = time.monotonic()
        time.sleep(STALENESS_S + 2.5)
    assert load.errors == []
    assert len(load.seen) >= 300, len(load.seen)
    late = [(t - returned, kind, got) for t, kind, got in load.seen if down & set(got)]
    # Observed lag: the last request that still saw a taken-down item started this long after
    # SetAvailability returned.
    lag = max((t for t, _, _ in late), default=0.0)
    print(f"takedown: {len(load.seen)} requests, last one with the item started {lag:.3f} s after")
    assert lag < STALENESS_S, late[-3:]
    after = [(kind, got) for t, kind, got in load.seen if t >= returned + STALENESS_S]
    assert {kind for kind, _ in after} == set(calls)
    # Candidates searched past the taken-down items: answers keep their length.
    assert all(len(got) == 10 for kind, got in after if kind in ("user", "cold", "similar"))
    # The candidates service itself no longer returns them (so ranked lists keep their length).
    with grpc.insecure_channel(stack.address("candidates")) as channel:
        query = candidates_pb2.CandidateQuery(item_id=neighbour, num_candidates=200)
        response = CandidateServiceStub(channel).SearchCandidates(
            candidates_pb2.SearchCandidatesRequest(queries=[query]), timeout=5
        )
    [found] = response.results
    assert len(found.item_ids) == 200 and not down & set(found.item_ids)
    yield Scene(user, top, cold_top, neighbour)


def test_takedown_under_concurrent_load_holds_after_the_staleness_bound(scene: Scene) -> None:
    """The load and its checks run in the `scene` fixture, which the fault tests share."""
    assert scene.top != scene.neighbour


def check_paths(gateway: Gateway, scene: Scene, shelves: dict[str, str]) -> dict[str, int]:
    """Every kind of request once: no taken-down item, filters hold. Returns the degraded
    reason of each."""
    responses: dict[str, pb.RecommendResponse | pb.GetSimilarItemsResponse] = {
        "user": gateway.recommend(scene.user),
        "user_filtered": gateway.recommend(scene.user, SHELF_A),
        "cold": gateway.recommend(""),
        "cold_filtered": gateway.recommend("", SHELF_A),
        "similar": gateway.similar(scene.neighbour),
        "similar_filtered": gateway.similar(scene.neighbour, SHELF_A),
    }
    for kind, response in responses.items():
        got = ids(response)
        assert got, kind
        assert not scene.taken_down & set(got), (kind, got)
        if kind.endswith("_filtered"):
            assert {shelves[i] for i in got} == {"a"}, (kind, got)
        assert "not applied" not in response.degraded_detail, (kind, response.degraded_detail)
    return {kind: r.degraded_reason for kind, r in responses.items()}


R = types_pb2
EXPECTED = {
    # backend -> degraded reason of user, similar requests while it is away
    "embedding_store": (R.DEGRADED_REASON_EMBEDDING_STORE_UNAVAILABLE, 0),
    "candidates": (R.DEGRADED_REASON_CANDIDATES_UNAVAILABLE, R.DEGRADED_REASON_CANDIDATES_UNAVAILABLE),
    "ranking": (R.DEGRADED_REASON_RANKING_UNAVAILABLE, 0),
}  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["sigstop", "sigkill"])
@pytest.mark.parametrize("backend", list(EXPECTED))
def test_takedown_holds_while_a_backend_is_away(
    stack: Stack,
    gateway: Gateway,
    scene: Scene,
    shelves: dict[str, str],
    backend: str,
    sig: signal.Signals,
) -> None:
    assert check_paths(gateway, scene, shelves)["user"] == 0
    pid = stack.pid(backend)
    assert pid is not None
    if sig == signal.SIGSTOP:
        os.kill(pid, signal.SIGSTOP)
    else:
        stack.stop_process(backend, signal.SIGKILL)
    try:
        reasons = check_paths(gateway, scene, shelves)
        user_reason, similar_reason = EXPECTED[backend]
        assert reasons["user"] == reasons["user_filtered"] == user_reason
        assert reasons["similar"] == reasons["similar_filtered"] == similar_reason
        assert reasons["cold"] == R.DEGRADED_REASON_COLD_START
    finally:
        if sig == signal.SIGSTOP:
            os.kill(pid, signal.SIGCONT)
        else:
            stack.start_service(backend, {"RECSERVE_MODEL_POLL_INTERVAL_S": "0.2"})
            wait_serving(stack.address(backend), 60)
    deadline = time.monotonic() + 15
    while gateway.recommend(scene.user).degraded:
        assert time.monotonic() < deadline, f"did not recover after {backend} came back"
        time.sleep(0.1)
    check_paths(gateway, scene, shelves)


def test_back_in_stock_brings_the_item_back(
    stack: Stack, gateway: Gateway, scene: Scene, shelves: dict[str, str]
) -> None:
    set_availability(stack, sorted(scene.taken_down), True)
    time.sleep(STALENESS_S)
    assert ids(gateway.recommend(scene.user))[0] == scene.top
    assert scene.top in ids(gateway.similar(scene.neighbour))
    assert ids(gateway.recommend(""))[0] == scene.cold_top
