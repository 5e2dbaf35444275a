"""AdaptiveBatcher: coalescing, no wait when idle, per-request deadlines, isolation of bad items."""

from __future__ import annotations

import asyncio

import pytest

from recserve.gateway.batcher import AdaptiveBatcher, BatchRejected, DeadlineExceeded
from recserve.runtime.errors import ResourceExhausted


class Backend:
    def __init__(self, delay: float = 0.0, reject: set[int] | None = None):
        self.calls: list[list[int]] = []
        self.delay = delay
        self.reject = reject or set()
        self.release = asyncio.Event()
        self.release.set()

    async def send(self, key: str, queries: list[int], timeout: float) -> list[str]:
        self.calls.append(list(queries))
        await self.release.wait()
        await asyncio.sleep(self.delay)
        if self.reject & set(queries):
            raise BatchRejected(f"bad {sorted(self.reject & set(queries))}")
        return [f"{key}:{q}" for q in queries]


def make(backend: Backend, **kw: int) -> AdaptiveBatcher[str, int, str]:
    limits = {"max_batch": 64, "max_in_flight": 1, "max_queued": 100, **kw}
    return AdaptiveBatcher(backend.send, stage="test", **limits)


def deadline(seconds: float = 1.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_lone_request_is_sent_at_once() -> None:
    backend = Backend()
    batcher = make(backend)
    assert await batcher.submit("v1", 7, deadline()) == "v1:7"
    assert backend.calls == [[7]]


async def test_requests_arriving_during_a_call_are_coalesced_in_order() -> None:
    backend = Backend()
    backend.release.clear()
    batcher = make(backend)
    first = asyncio.ensure_future(batcher.submit("v1", 0, deadline()))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit("v1", i, deadline())) for i in range(1, 6)]
    await asyncio.sleep(0)
    backend.release.set()
    results = await asyncio.gather(first, *rest)
    assert results == [f"v1:{i}" for i in range(6)]
    assert backend.calls == [[0], [1, 2, 3, 4, 5]]


async def test_batches_never_mix_keys() -> None:
    backend = Backend()
    backend.release.clear()
    batcher = make(backend)
    tasks = [asyncio.ensure_future(batcher.submit(f"v{i % 2}", i, deadline())) for i in range(5)]
    await asyncio.sleep(0)
    backend.release.set()
    assert await asyncio.gather(*tasks) == [f"v{i % 2}:{i}" for i in range(5)]
    for call in backend.calls:
        assert len({q % 2 for q in call}) == 1


async def test_max_batch_splits_large_queues() -> None:
    backend = Backend()
    backend.release.clear()
    batcher = make(backend, max_batch=2)
    tasks = [asyncio.ensure_future(batcher.submit("v", i, deadline())) for i in range(5)]
    await asyncio.sleep(0)
    backend.release.set()
    await asyncio.gather(*tasks)
    assert backend.calls == [[0], [1, 2], [3, 4]]


async def test_slow_batch_does_not_hold_a_request_past_its_own_deadline() -> None:
    backend = Backend(delay=0.5)
    batcher = make(backend)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceeded):
        await batcher.submit("v", 1, deadline(0.05))
    assert loop.time() - started < 0.4


async def test_invalid_item_fails_alone() -> None:
    backend = Backend(reject={3})
    backend.release.clear()
    batcher = make(backend)
    first = asyncio.ensure_future(batcher.submit("v", 0, deadline()))
    await asyncio.sleep(0)
    tasks = [asyncio.ensure_future(batcher.submit("v", i, deadline())) for i in (1, 3, 5)]
    await asyncio.sleep(0)
    backend.release.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert results[0] == "v:0" and results[1] == "v:1" and results[3] == "v:5"
    assert isinstance(results[2], BatchRejected)


async def test_full_queue_sheds_immediately() -> None:
    backend = Backend()
    backend.release.clear()
    batcher = make(backend, max_queued=2)
    tasks = [asyncio.ensure_future(batcher.submit("v", i, deadline())) for i in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(ResourceExhausted):
        await batcher.submit("v", 99, deadline())
    backend.release.set()
    await asyncio.gather(*tasks)
