"""CatalogView against a real redis-server: snapshot, follower within a bound, resnapshot after
a trimmed stream and after a Redis that came back empty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from recserve.catalog import CatalogItem, CatalogStore, CatalogView
from recserve.devstack.stack import free_port
from recserve.runtime import redis_client
from recserve.runtime.config import RedisConfig
from tests.catalog.conftest import start_redis

# Generous for a loaded 2-core machine; the measured lag is ~1 ms (tools/catalog_propagation.py).
BOUND_S = 5.0


async def eventually(check: Callable[[], bool], bound_s: float = BOUND_S) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > bound_s:
            raise AssertionError(f"not within {bound_s}s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def _propagation_count() -> float:
    return REGISTRY.get_sample_value("recserve_catalog_propagation_seconds_count") or 0.0


async def test_follower_applies_changes(store: CatalogStore) -> None:
    await store.upsert([CatalogItem("a", {"genre": "Comedy"}, {"margin": 0.5})])
    view = CatalogView(store, block_ms=100)
    seen: list[tuple[list[str], str]] = []
    view.on_change.append(lambda ids, op: seen.append((list(ids), op)))
    await view.start()
    try:
        assert view.loaded.is_set() and len(view) == 1 and "a" in view
        assert view.attributes("a") == {"genre": "Comedy"} and view.numeric("a") == {"margin": 0.5}
        assert view.is_available("a") and view.is_available("unknown")
        assert view.attributes("unknown") == {} and view.numeric("unknown") == {}
        assert seen == [(["a"], "snapshot")]
        before = (view.version, _propagation_count())

        await store.set_availability(["a", "b"], False)
        await eventually(lambda: not view.is_available("a"))
        assert view.unavailable_ids() == {"a", "b"} and "b" in view
        await store.upsert([CatalogItem("a", {"genre": "Drama"}), CatalogItem("c")])
        await eventually(lambda: "c" in view)
        assert view.attributes("a") == {"genre": "Drama"} and view.numeric("a") == {}
        assert not view.is_available("a")  # upsert without `available` keeps it
        assert seen[1:] == [(["a", "b"], "availability"), (["a", "c"], "upsert")]
        assert view.version == before[0] + 2
        assert _propagation_count() == before[1] + 2
        assert REGISTRY.get_sample_value("recserve_catalog_items") == 3
        assert REGISTRY.get_sample_value("recserve_catalog_available_items") == 1
    finally:
        await view.stop()


async def test_a_failing_callback_does_not_stop_the_follower(store: CatalogStore) -> None:
    view = CatalogView(store, block_ms=100)
    view.on_change.append(lambda ids, op: 1 / 0)
    await view.start()
    try:
        await store.set_availability(["x"], False)
        await eventually(lambda: not view.is_available("x"))
        await store.set_availability(["x"], True)
        await eventually(lambda: view.is_available("x"))
    finally:
        await view.stop()


async def test_resnapshot_when_the_stream_was_trimmed_past_the_view(
    aclient: aioredis.Redis,
) -> None:
    store = CatalogStore(aclient, stream_maxlen=1)
    await store.upsert([CatalogItem("old")])
    view = CatalogView(store, block_ms=1)
    ops: list[str] = []
    view.on_change.append(lambda ids, op: ops.append(op))
    await view.resnapshot()  # no follower task: this test drives it with poll_once
    for i in range(300):  # more than the stream keeps (MAXLEN ~ drops 100-entry nodes)
        await store.upsert([CatalogItem(f"x{i}", available=i % 2 == 0)])
    await aclient.delete("recserve:{catalog}:item:old")
    await aclient.srem("recserve:{catalog}:ids", "old")
    await view.poll_once()
    assert ops[:2] == ["snapshot", "snapshot"]
    assert "old" not in view and len(view) == 300
    assert len(view.unavailable_ids()) == 150


async def test_resnapshot_after_a_redis_outage(tmp_path: Path) -> None:
    port = free_port()
    process = start_redis(tmp_path, port, aof=False)
    # The services' fail-fast client (one retry, no backoff).
    client = redis_client.connect(
        RedisConfig(f"redis://127.0.0.1:{port}/0", None, socket_timeout_s=1, max_connections=4)
    )
    view = CatalogView(CatalogStore(client), block_ms=100, retry_s=0.1)
    try:
        store = CatalogStore(client)
        await store.upsert([CatalogItem("gone", available=False)])
        await view.start()
        assert not view.is_available("gone")
        process.kill()
        process.wait(10)
        await asyncio.sleep(0.3)  # the follower meets the outage
        # Back without its data (no persistence): what the view held is stale.
        process = start_redis(tmp_path, port, aof=False)
        await store.upsert([CatalogItem("new", {"g": "x"})])
        await eventually(lambda: "new" in view)
        # Never "new" applied on top of the stale copy: the reload comes first.
        assert "gone" not in view and view.is_available("gone")
    finally:
        await view.stop()
        await client.aclose()
        process.kill()
        process.wait(10)
