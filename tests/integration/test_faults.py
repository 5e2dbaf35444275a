"""Degradation, hot reload and graceful shutdown against real processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from recserve.client import RecommenderClient
from recserve.devstack import Stack
from recserve.devstack.stack import wait_serving

from .conftest import train

BUDGET_S = 0.2


def timed(client: RecommenderClient, user_id: str) -> tuple[float, object]:
    started = time.perf_counter()
    result = client.recommend(user_id, k=10)
    return time.perf_counter() - started, result


@pytest.fixture
def gateway(stack: Stack) -> Iterator[RecommenderClient]:
    with RecommenderClient(stack.address("gateway"), timeout_s=5) as client:
        yield client


def first_user(stack: Stack) -> str:
    import redis

    key = next(redis.Redis.from_url(stack.redis_url).scan_iter(match="recserve:user:*:events"))
    return str(key.decode().split("{", 1)[1].split("}", 1)[0])


def test_redis_stalled_gives_flagged_popular_items_within_budget(
    stack: Stack, gateway: RecommenderClient
) -> None:
    user = first_user(stack)
    assert not gateway.recommend(user, k=10).degraded
    redis_pid = stack.pid("redis")
    assert redis_pid is not None
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        for _ in range(5):
            elapsed, result = timed(gateway, user)
            assert result.degraded and result.degraded_reason == "embedding_store_unavailable"  # type: ignore[attr-defined]
            assert len(result.items) == 10  # type: ignore[attr-defined]
            # Client-observed, so allow for the client's own overhead on a shared machine.
            assert elapsed < BUDGET_S + 0.3
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while gateway.recommend(user, k=10).degraded:
        assert time.monotonic() < deadline, "did not recover after Redis resumed"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("backend", "reason"),
    [("ranking", "ranking_unavailable"), ("candidates", "candidates_unavailable"),
     ("embedding_store", "embedding_store_unavailable")],
)  # fmt: skip
def test_killed_backend_gives_flagged_fallback_then_recovers(
    stack: Stack, gateway: RecommenderClient, backend: str, reason: str
) -> None:
    user = first_user(stack)
    healthy = gateway.recommend(user, k=10)
    assert not healthy.degraded
    stack.stop_process(backend, signal.SIGKILL)
    try:
        elapsed, result = timed(gateway, user)
        assert result.degraded and result.degraded_reason == reason  # type: ignore[attr-defined]
        assert len(result.items) == 10  # type: ignore[attr-defined]
        assert elapsed < BUDGET_S + 0.3
        if backend == "ranking":
            # ANN order of the same candidates: the same items the ranker would reorder.
            assert set(result.item_ids) <= set(gateway.recommend(user, k=100).item_ids) | set(
                result.item_ids
            )  # type: ignore[attr-defined]
    finally:
        stack.start_service(backend, {"RECSERVE_MODEL_POLL_INTERVAL_S": "0.2"})
        wait_serving(stack.address(backend), 60)
    deadline = time.monotonic() + 15
    while gateway.recommend(user, k=10).degraded:
        assert time.monotonic() < deadline, f"did not recover after {backend} restarted"
        time.sleep(0.1)
    assert gateway.recommend(user, k=10).item_ids == healthy.item_ids


class Hammer:
    """Concurrent Recommend calls from threads; records every outcome."""

    def __init__(self, address: str, users: list[str], threads: int = 4):
        self.errors: list[str] = []
        self.versions: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(address, users), daemon=True)
            for _ in range(threads)
        ]

    def _run(self, address: str, users: list[str]) -> None:
        with RecommenderClient(address, timeout_s=5) as client:
            i = 0
            while not self._stop.is_set():
                try:
                    result = client.recommend(users[i % len(users)], k=10)
                    if result.degraded:
                        self.errors.append(
                            f"degraded: {result.degraded_reason} {result.degraded_detail}"
                        )
                    self.versions.append(result.model_version)
                except grpc.RpcError as exc:
                    self.errors.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
                self.count += 1
                i += 1

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)


def test_hot_reload_under_load_has_no_errors_and_never_mixes(
    stack: Stack, gateway: RecommenderClient
) -> None:
    old = (stack.newest_bundle() or Path()).name
    train(stack.bundles_dir, "--epochs", "2")
    new = (stack.newest_bundle() or Path()).name
    assert new != old
    user = first_user(stack)
    with Hammer(stack.address("gateway"), [user]) as hammer:
        time.sleep(0.5)
        stack.publish(new)
        deadline = time.monotonic() + 20
        while gateway.recommend(user, k=10).model_version != new:
            assert time.monotonic() < deadline, "services did not switch to the new version"
            time.sleep(0.1)
        time.sleep(0.5)
    assert hammer.errors == []
    assert hammer.count > 20
    assert set(hammer.versions) <= {old, new}
    # Versions only move forward once the new one is served.
    switched = hammer.versions.index(new)
    assert old not in hammer.versions[switched + 50 :]


def test_graceful_shutdown_lets_in_flight_requests_finish(stack: Stack) -> None:
    user = first_user(stack)
    ranking_pid = stack.pid("ranking")
    assert ranking_pid is not None
    results: list[object] = []

    def call() -> None:
        with RecommenderClient(stack.address("gateway"), timeout_s=5) as client:
            try:
                results.append(client.recommend(user, k=10))
            except grpc.RpcError as exc:
                results.append(exc)

    # A stalled ranking keeps requests in flight until their budget runs out.
    os.kill(ranking_pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.08)
        gateway_pid = stack.pid("gateway")
        assert gateway_pid is not None
        os.kill(gateway_pid, signal.SIGTERM)
        for t in threads:
            t.join(10)
    finally:
        os.kill(ranking_pid, signal.SIGCONT)
    stack.stop_process("gateway")
    stack.start_service("gateway", {"RECSERVE_MODEL_POLL_INTERVAL_S": "0.2"})
    wait_serving(stack.address("gateway"), 60)
    assert len(results) == 8
    for result in results:
        assert not isinstance(result, grpc.RpcError), result
        assert result.degraded_reason == "ranking_unavailable"  # type: ignore[attr-defined]
