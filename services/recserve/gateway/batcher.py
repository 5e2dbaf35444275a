"""Adaptive micro-batching (no gRPC): queries that arrive while a backend call is in flight
are sent together as one call when a slot frees up. No timer, so a lone request never waits."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer

from recserve.runtime.errors import ResourceExhausted
from recserve.runtime.metrics import BATCH_SIZE
from recserve.runtime.tracing import BATCH_SIZE as BATCH_SIZE_ATTRIBUTE
from recserve.runtime.tracing import STAGE

QueryT = TypeVar("QueryT")
ResultT = TypeVar("ResultT")
KeyT = TypeVar("KeyT", bound=Hashable)


class DeadlineExceeded(Exception):
    """The caller's deadline passed before its batch answered."""


class BatchRejected(Exception):
    """The backend refused a batch as invalid; items are retried alone to isolate the culprit."""


SendBatch = Callable[[KeyT, list[QueryT], float], Awaitable[list[ResultT]]]


@dataclass
class _Waiter(Generic[QueryT, ResultT]):
    query: QueryT
    deadline: float
    future: asyncio.Future[ResultT]
    # The request's own span for its wait and call (None with tracing off).
    span: Span | None


class AdaptiveBatcher(Generic[KeyT, QueryT, ResultT]):
    """Tracing (with a `tracer`): every submitted query gets a span named `stage` in its
    request's trace, from submit until its result; each batch call runs in one span named
    `span_name` that the send function's downstream call continues. A batch of one is a child
    of its query's span, so a lone request is one connected trace; a larger batch is a root
    span linking to every query's span, and each of those links back to it."""

    def __init__(
        self,
        send: SendBatch[KeyT, QueryT, ResultT],
        *,
        stage: str,
        max_batch: int,
        max_in_flight: int,
        max_queued: int,
        tracer: Tracer | None = None,
        span_name: str = "",
        span_attributes: Mapping[str, str] | None = None,
    ):
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._batch_size = BATCH_SIZE.labels(stage)
        self._stage = stage
        self._tracer = tracer
        self._span_name = span_name or stage
        self._span_attributes = dict(span_attributes or {})
        self._queues: dict[KeyT, list[_Waiter[QueryT, ResultT]]] = {}
        self._queued = 0
        self._in_flight = 0

    async def submit(self, key: KeyT, query: QueryT, deadline: float) -> ResultT:
        """Result for `query`, or DeadlineExceeded at `deadline` (loop time) whatever the batch does."""
        loop = asyncio.get_running_loop()
        if self._queued >= self._max_queued:
            # Shed at once: queueing past the budget only turns overload into timeouts.
            raise ResourceExhausted(f"{self._stage} queue is full ({self._max_queued} waiting)")
        span = None
        if self._tracer is not None:
            span = self._tracer.start_span(self._stage, attributes={STAGE: self._stage})
        waiter: _Waiter[QueryT, ResultT] = _Waiter(query, deadline, loop.create_future(), span)
        self._queues.setdefault(key, []).append(waiter)
        self._queued += 1
        if self._in_flight < self._max_in_flight:
            self._dispatch(key)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(waiter.future)
        except TimeoutError:
            raise DeadlineExceeded(f"{self._stage} did not answer before the deadline") from None
        finally:
            if span is not None:
                _end(span, waiter.future)

    def _dispatch(self, key: KeyT) -> None:
        queue = self._queues[key]
        batch = queue[: self._max_batch]
        del queue[: self._max_batch]
        if not queue:
            del self._queues[key]
        self._queued -= len(batch)
        self._in_flight += 1
        # A fresh context: the batch belongs to no one request, whichever one triggered it
        # (create_task would copy the caller's, and with it the current span).
        asyncio.get_running_loop().create_task(self._run(key, batch), context=contextvars.Context())

    async def _run(self, key: KeyT, batch: list[_Waiter[QueryT, ResultT]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            now = loop.time()
            live = [w for w in batch if w.deadline > now and not w.future.done()]
            if live:
                await self._call(key, live)
        finally:
            self._in_flight -= 1
            while self._queues and self._in_flight < self._max_in_flight:
                self._dispatch(next(iter(self._queues)))

    async def _call(self, key: KeyT, batch: list[_Waiter[QueryT, ResultT]]) -> None:
        loop = asyncio.get_running_loop()
        self._batch_size.observe(len(batch))
        # The call may run until the latest member's deadline; earlier members stop waiting on their own.
        timeout = max(w.deadline for w in batch) - loop.time()
        try:
            with self._batch_span(batch):
                results = await self._send(key, [w.query for w in batch], timeout)
        except BatchRejected as exc:
            if len(batch) == 1:
                _fail(batch[0].future, exc)
                return
            for waiter in batch:
                await self._call(key, [waiter])
            return
        except Exception as exc:
            for waiter in batch:
                _fail(waiter.future, exc)
            return
        for waiter, result in zip(batch, results, strict=True):
            if not waiter.future.done():
                waiter.future.set_result(result)

    def _batch_span(self, batch: list[_Waiter[QueryT, ResultT]]) -> AbstractContextManager[object]:
        """The current span while one batch call runs (nothing with tracing off)."""
        members = [w.span for w in batch if w.span is not None]
        if self._tracer is None or not members:
            return contextlib.nullcontext()
        attributes: dict[str, str | int] = {
            **self._span_attributes,
            BATCH_SIZE_ATTRIBUTE: len(batch),
        }
        for member in members:
            member.set_attribute(BATCH_SIZE_ATTRIBUTE, len(batch))
        if len(members) == 1:
            return self._tracer.start_as_current_span(
                self._span_name,
                context=trace.set_span_in_context(members[0]),
                kind=SpanKind.CLIENT,
                attributes=attributes,
            )
        span = self._tracer.start_span(
            self._span_name,
            context=Context(),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=[Link(m.get_span_context()) for m in members],
        )
        for member in members:
            member.add_link(span.get_span_context())
        return trace.use_span(span, end_on_exit=True)


def _end(span: Span, future: asyncio.Future[ResultT]) -> None:
    """Ends a query's span, failed unless its batch answered it."""
    if not future.done() or future.cancelled() or future.exception() is not None:
        span.set_status(StatusCode.ERROR)
    span.end()


def _fail(future: asyncio.Future[ResultT], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        # Retrieved here so a waiter that already timed out does not log "never retrieved".
        future.exception()
