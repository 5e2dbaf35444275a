"""The open-loop (constant arrival rate) schedule shared by the benchmarks and the chaos load.

Request i is due at ``start + i / rate`` and is started then whatever earlier requests are
doing; its latency is measured from that scheduled time, so a stalled server or generator
shows up as latency instead of silently lowering the offered load (no coordinated omission).
A schedule is bounded in count (``floor(rate * duration)`` requests) and in time (the last one
is due before ``duration`` has passed; each call is bounded by the caller's own deadline).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


def arrival_offsets(rate: float, duration_s: float) -> np.ndarray:
    """Seconds from the start at which each request is due: i / rate, evenly spaced."""
    if rate <= 0 or duration_s <= 0:
        return np.zeros(0)
    return np.arange(math.floor(rate * duration_s)) / rate


def split_offsets(offsets: np.ndarray, workers: int) -> list[np.ndarray]:
    """Round-robin the global schedule so the workers' merged arrivals stay evenly spaced:
    worker w gets requests w, w + workers, w + 2 * workers, ..."""
    return [offsets[k::workers] for k in range(workers)]


@dataclass
class ScheduleResult(Generic[T]):
    """One entry per request started, in schedule order."""

    results: list[T]  # what fire returned
    latency_s: np.ndarray  # completion - scheduled time
    send_lag_s: np.ndarray  # actual send - scheduled time: the generator's own delay
    max_in_flight: int


async def run_schedule(
    offsets: Sequence[float] | np.ndarray,
    fire: Callable[[int, float], Awaitable[T]],
    start: float,
    clock: Callable[[], float] = time.perf_counter,
    stop: Callable[[], bool] = lambda: False,
) -> ScheduleResult[T]:
    """Start fire(k, due) at due = start + offsets[k] (in `clock`'s time) without waiting
    for earlier calls to finish, then wait for all of them.

    If the loop falls behind (GC pause, CPU contention) the overdue requests are sent at once
    and their latency still counts from the schedule. Once stop() is true no further request
    is started; those already started are still awaited.
    """
    n = len(offsets)
    latency = np.full(n, math.nan)
    lag = np.zeros(n)
    in_flight = 0
    max_in_flight = 0

    async def one(k: int, due: float) -> T:
        nonlocal in_flight
        try:
            return await fire(k, due)
        finally:
            latency[k] = clock() - due
            in_flight -= 1

    tasks: list[asyncio.Task[T]] = []
    for k, off in enumerate(offsets):
        due = start + float(off)
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if stop():
            break
        lag[k] = max(0.0, clock() - due)
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        tasks.append(asyncio.create_task(one(k, due)))
    results = list(await asyncio.gather(*tasks))
    started = len(tasks)
    return ScheduleResult(results, latency[:started], lag[:started], max_in_flight)
