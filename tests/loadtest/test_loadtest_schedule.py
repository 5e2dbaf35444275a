"""The open-loop schedule shared by the benchmarks (loadtest.openloop) and the chaos load."""

import asyncio

import numpy as np

from loadtest.schedule import ScheduleResult, arrival_offsets, run_schedule, split_offsets


def test_arrival_offsets_are_evenly_spaced_and_split_round_robin() -> None:
    offs = arrival_offsets(100.0, 0.5)
    assert offs.size == 50
    assert np.allclose(np.diff(offs), 0.01)
    parts = split_offsets(offs, 3)
    assert sorted(np.concatenate(parts).tolist()) == offs.tolist()
    assert np.allclose(np.diff(parts[0]), 0.03)
    assert parts[1][0] == offs[1]
    assert arrival_offsets(0.0, 1.0).size == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_latency_counts_from_schedule_not_from_send() -> None:
    # Three requests due at once on a server that serves one at a time, 5 s each: an
    # open-loop generator sends all three at t=0 and sees 5, 10, 15 s. A closed-loop one
    # would report 5, 5, 5 (coordinated omission).
    clock = FakeClock()
    dues: list[float] = []

    async def fire(k: int, due: float) -> int:
        dues.append(due)
        clock.now += 5.0
        return k * 10

    res = asyncio.run(run_schedule([0.0, 0.0, 0.0], fire, start=0.0, clock=clock))
    assert res.latency_s.tolist() == [5.0, 10.0, 15.0]
    assert res.send_lag_s.tolist() == [0.0, 0.0, 0.0]
    assert res.max_in_flight == 3
    assert res.results == [0, 10, 20]
    assert dues == [0.0, 0.0, 0.0]


def test_late_send_is_charged_to_the_request() -> None:
    # The generator itself is 2 s late for every request (e.g. starved of CPU).
    clock = FakeClock()
    clock.now = 2.0

    async def fire(k: int, due: float) -> float:
        return due

    res = asyncio.run(run_schedule([0.0, 0.5], fire, start=0.0, clock=clock))
    assert res.send_lag_s.tolist() == [2.0, 1.5]
    assert res.latency_s.tolist() == [2.0, 1.5]
    assert res.results == [0.0, 0.5]


def test_requests_do_not_wait_for_earlier_ones() -> None:
    async def slow(k: int, due: float) -> None:
        await asyncio.sleep(0.1)

    async def go() -> ScheduleResult[None]:
        loop = asyncio.get_running_loop()
        return await run_schedule([0.0, 0.02, 0.04], slow, start=loop.time(), clock=loop.time)

    assert asyncio.run(go()).max_in_flight == 3


def test_stop_ends_the_schedule_but_awaits_what_was_started() -> None:
    finished: list[int] = []

    async def fire(k: int, due: float) -> int:
        await asyncio.sleep(0.05)
        finished.append(k)
        return k

    async def go() -> ScheduleResult[int]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        return await run_schedule(
            [0.0, 0.01, 0.02, 0.5, 0.6],
            fire,
            start=start,
            clock=loop.time,
            stop=lambda: loop.time() - start > 0.1,
        )

    res = asyncio.run(go())
    assert res.results == [0, 1, 2] and sorted(finished) == [0, 1, 2]
    assert res.latency_s.size == res.send_lag_s.size == 3
    assert (res.latency_s >= 0.05).all()
