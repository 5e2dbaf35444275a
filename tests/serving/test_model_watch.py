"""ModelRegistry and ModelWatcher logic with fake fetch/load callables and a fake clock; the
embedding store's version check against a real redis-server."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from recserve.embedding_store.app import verify_version
from recserve.embedding_store.store import EmbeddingStore
from recserve.model import QueryConfig, RedisLayout
from recserve.runtime import errors
from recserve.runtime.metrics import MODEL_LOAD_FAILING
from recserve.runtime.model_watch import ModelRegistry, ModelWatcher
from tests.conftest import RedisServer


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reload_errors() -> float:
    return sample("recserve_model_reloads_total", outcome="error")


def failing() -> float:
    return sample("recserve_model_load_failing")


# --- registry ------------------------------------------------------------------------------------


def test_registry_serves_the_newest_or_a_pinned_version_and_keeps_the_last_few() -> None:
    registry: ModelRegistry[str] = ModelRegistry(keep=2)
    with pytest.raises(errors.Unavailable, match="no model loaded yet"):
        registry.get("")
    for version in ("reg-a", "reg-b", "reg-c"):
        registry.add(version, f"model {version}")
    assert registry.versions() == ["reg-b", "reg-c"]
    assert registry.get("") == ("reg-c", "model reg-c")
    assert registry.get("reg-b") == ("reg-b", "model reg-b")
    with pytest.raises(errors.FailedPrecondition, match="'reg-a' is not loaded here"):
        registry.get("reg-a")
    assert sample("recserve_model_info", version="reg-c") == 1
    assert REGISTRY.get_sample_value("recserve_model_info", {"version": "reg-a"}) is None


# --- watcher -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fakes:
    """The active version, and a load that fails while `broken` holds the version."""

    def __init__(self) -> None:
        self.active: str | None = None
        self.down = False  # fetch raises, as when Redis is away
        self.broken: set[str] = set()
        self.attempts: list[str] = []
        self.loaded: list[str] = []

    async def fetch(self) -> str | None:
        if self.down:
            raise ConnectionError("redis down")
        return self.active

    async def load(self, version: str) -> str:
        self.attempts.append(version)
        if version in self.broken:
            raise OSError(f"cannot read {version}")
        return f"model {version}"

    async def on_loaded(self, version: str) -> None:
        self.loaded.append(version)


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> ModelRegistry[str]:
    return ModelRegistry()


@pytest.fixture
def watcher(
    registry: ModelRegistry[str], fakes: Fakes, clock: Clock
) -> Iterator[ModelWatcher[str]]:
    watcher: ModelWatcher[str] = ModelWatcher(
        registry,
        fakes.fetch,
        fakes.load,
        poll_interval_s=1.0,
        max_backoff_s=5.0,
        on_loaded=fakes.on_loaded,
        clock=clock,
    )
    yield watcher
    MODEL_LOAD_FAILING.set(0)  # process-wide: each test starts from 0


async def test_a_transient_failure_is_retried_and_then_loads(
    watcher: ModelWatcher[str],
    registry: ModelRegistry[str],
    fakes: Fakes,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fakes.active = "w-1"
    fakes.broken = {"w-1"}
    errors_before = reload_errors()
    with caplog.at_level(logging.ERROR, logger="recserve.runtime.model_watch"):
        await watcher.check_once()
    assert fakes.attempts == ["w-1"] and fakes.loaded == []
    assert failing() == 1
    assert reload_errors() == errors_before + 1
    [record] = caplog.records
    assert "w-1" in record.getMessage() and "attempt 1" in record.getMessage()
    assert record.__dict__["version"] == "w-1" and record.__dict__["attempt"] == 1

    fakes.broken = set()
    await watcher.check_once()  # still inside the backoff: not tried
    assert fakes.attempts == ["w-1"]
    clock.now += 1.0
    await watcher.check_once()
    assert fakes.attempts == ["w-1", "w-1"] and fakes.loaded == ["w-1"]
    assert registry.get("") == ("w-1", "model w-1")
    assert failing() == 0 and watcher.retry_at is None
    assert reload_errors() == errors_before + 1

    await watcher.check_once()  # loaded: nothing more to do
    assert fakes.attempts == ["w-1", "w-1"]


async def test_backoff_doubles_from_the_poll_interval_up_to_the_cap(
    watcher: ModelWatcher[str], fakes: Fakes, clock: Clock
) -> None:
    fakes.active = "b-1"
    fakes.broken = {"b-1"}
    errors_before = reload_errors()
    waits = []
    for _ in range(5):
        await watcher.check_once()
        assert watcher.retry_at is not None
        waits.append(watcher.retry_at - clock.now)
        clock.now = watcher.retry_at - 0.01
        await watcher.check_once()  # just before the retry time: not tried
        clock.now += 0.01
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert fakes.attempts == ["b-1"] * 5
    assert reload_errors() == errors_before + 5
    assert failing() == 1


async def test_a_new_active_version_resets_the_backoff(
    watcher: ModelWatcher[str], fakes: Fakes, clock: Clock
) -> None:
    fakes.active = "n-1"
    fakes.broken = {"n-1", "n-2"}
    await watcher.check_once()
    for _ in range(2):
        assert watcher.retry_at is not None
        clock.now = watcher.retry_at
        await watcher.check_once()
    assert fakes.attempts == ["n-1"] * 3
    assert watcher.retry_at == clock.now + 4.0
    fakes.active = "n-2"
    await watcher.check_once()  # tried at once, first attempt of its own
    assert fakes.attempts[-1] == "n-2"
    assert watcher.retry_at == clock.now + 1.0
    assert failing() == 1

    fakes.broken = set()
    await watcher.check_once()
    assert fakes.attempts[-1] == "n-2"  # still backing off n-2
    clock.now += 1.0
    await watcher.check_once()
    assert fakes.loaded == ["n-2"] and failing() == 0


async def test_going_back_to_a_loaded_version_clears_the_failure(
    watcher: ModelWatcher[str], fakes: Fakes, clock: Clock
) -> None:
    fakes.active = "r-1"
    await watcher.check_once()
    fakes.active = "r-2"
    fakes.broken = {"r-2"}
    await watcher.check_once()
    assert failing() == 1
    fakes.active = "r-1"  # rolled back
    await watcher.check_once()
    assert failing() == 0 and watcher.retry_at is None
    fakes.active = "r-2"  # published again: tried at once
    await watcher.check_once()
    assert fakes.attempts == ["r-1", "r-2", "r-2"]


async def test_an_unreadable_active_version_is_logged_once_per_outage(
    watcher: ModelWatcher[str], fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.active = "o-1"
    fakes.down = True
    with caplog.at_level(logging.INFO, logger="recserve.runtime.model_watch"):
        for _ in range(3):
            await watcher.check_once()
        fakes.down = False
        await watcher.check_once()
        await watcher.check_once()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "cannot read active model version (retrying quietly): redis down",
        "active model version readable again",
        "model loaded",
    ]
    assert fakes.loaded == ["o-1"] and failing() == 0


# --- embedding store: a version counts as loaded once Redis holds it ------------------------------

DIM = 4


@pytest.fixture
async def aclient(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


async def put_version(
    client: aioredis.Redis, layout: RedisLayout, version: str, items: list[str]
) -> None:
    await client.hset(
        layout.meta_key(version),
        mapping={"dim": DIM, "query": json.dumps(QueryConfig().to_dict())},
    )
    if items:
        await client.hset(layout.item_features_key(version), mapping={i: "{}" for i in items})
    for i in items:
        await client.set(layout.vector_key(version, i), np.ones(DIM, "<f4").tobytes())


async def test_verify_version_accepts_a_complete_version(aclient: aioredis.Redis) -> None:
    layout = RedisLayout()
    store = EmbeddingStore(aclient, layout, max_history=5)
    await put_version(aclient, layout, "e-1", [f"i{n}" for n in range(20)])
    meta = await verify_version(aclient, store, layout, "e-1")
    assert (meta.version, meta.dim) == ("e-1", DIM)


async def test_verify_version_refuses_what_redis_does_not_hold(aclient: aioredis.Redis) -> None:
    layout = RedisLayout()
    store = EmbeddingStore(aclient, layout, max_history=5)
    with pytest.raises(errors.FailedPrecondition, match="'e-0' is not published"):
        await verify_version(aclient, store, layout, "e-0")

    await put_version(aclient, layout, "e-2", [])
    with pytest.raises(RuntimeError, match="'e-2' has no items"):
        await verify_version(aclient, store, layout, "e-2")

    await put_version(aclient, layout, "e-3", ["a"])
    await aclient.delete(layout.vector_key("e-3", "a"))  # e.g. evicted
    with pytest.raises(RuntimeError, match=r"'e-3' has no vectors in Redis for \['a'\]"):
        await verify_version(aclient, store, layout, "e-3")

    await put_version(aclient, layout, "e-4", ["a"])
    await aclient.set(layout.vector_key("e-4", "a"), b"\x00" * 3)
    with pytest.raises(ValueError, match="expected 16"):
        await verify_version(aclient, store, layout, "e-4")
