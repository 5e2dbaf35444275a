"""Adaptive micro-batching (no gRPC): queries that arrive while a backend call is in flight
are sent together as one call when a slot frees up. No timer, so a lone request never waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from recserve.runtime.errors import ResourceExhausted
from recserve.runtime.metrics import BATCH_SIZE

QueryT = TypeVar("QueryT")
ResultT = TypeVar("ResultT")
KeyT = TypeVar("KeyT", bound=Hashable)


class DeadlineExceeded(Exception):
    """The caller's deadline passed before its batch answered."""


class BatchRejected(Exception):
    """The backend refused a batch as invalid; items are retried alone to isolate the culprit."""


SendBatch = Callable[[KeyT, list[QueryT], float], Awaitable[list[ResultT]]]


class AdaptiveBatcher(Generic[KeyT, QueryT, ResultT]):
    def __init__(
        self,
        send: SendBatch[KeyT, QueryT, ResultT],
        *,
        stage: str,
        max_batch: int,
        max_in_flight: int,
        max_queued: int,
    ):
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._batch_size = BATCH_SIZE.labels(stage)
        self._stage = stage
        self._queues: dict[KeyT, list[tuple[QueryT, float, asyncio.Future[ResultT]]]] = {}
        self._queued = 0
        self._in_flight = 0

    async def submit(self, key: KeyT, query: QueryT, deadline: float) -> ResultT:
        """Result for `query`, or DeadlineExceeded at `deadline` (loop time) whatever the batch does."""
        loop = asyncio.get_running_loop()
        if self._queued >= self._max_queued:
            # Shed at once: queueing past the budget only turns overload into timeouts.
            raise ResourceExhausted(f"{self._stage} queue is full ({self._max_queued} waiting)")
        future: asyncio.Future[ResultT] = loop.create_future()
        self._queues.setdefault(key, []).append((query, deadline, future))
        self._queued += 1
        if self._in_flight < self._max_in_flight:
            self._dispatch(key)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            raise DeadlineExceeded(f"{self._stage} did not answer before the deadline") from None

    def _dispatch(self, key: KeyT) -> None:
        queue = self._queues[key]
        batch = queue[: self._max_batch]
        del queue[: self._max_batch]
        if not queue:
            del self._queues[key]
        self._queued -= len(batch)
        self._in_flight += 1
        asyncio.get_running_loop().create_task(self._run(key, batch))

    async def _run(
        self, key: KeyT, batch: list[tuple[QueryT, float, asyncio.Future[ResultT]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            now = loop.time()
            live = [entry for entry in batch if entry[1] > now and not entry[2].done()]
            if live:
                await self._call(key, live)
        finally:
            self._in_flight -= 1
            while self._queues and self._in_flight < self._max_in_flight:
                self._dispatch(next(iter(self._queues)))

    async def _call(
        self, key: KeyT, batch: list[tuple[QueryT, float, asyncio.Future[ResultT]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        self._batch_size.observe(len(batch))
        # The call may run until the latest member's deadline; earlier members stop waiting on their own.
        timeout = max(deadline for _, deadline, _ in batch) - loop.time()
        try:
            results = await self._send(key, [query for query, _, _ in batch], timeout)
        except BatchRejected as exc:
            if len(batch) == 1:
                _fail(batch[0][2], exc)
                return
            for entry in batch:
                await self._call(key, [entry])
            return
        except Exception as exc:
            for _, _, future in batch:
                _fail(future, exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[ResultT], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        # Retrieved here so a waiter that already timed out does not log "never retrieved".
        future.exception()
