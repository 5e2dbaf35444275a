"""Open-loop load against the gateways, recording the outcome of every request.

Request i is due at ``start + i / rate`` and is sent then whatever earlier requests are doing;
its latency is measured from that scheduled time (`loadtest.schedule`), so a stalled server
shows up as latency instead of as a lower offered rate. The generator runs in its own
processes, which split the schedule round-robin (the harness meanwhile kills and restarts
things), and behaves like a careful client:

- one channel to the gateways' DNS name with round_robin and client health checking, so a
  gateway that reports NOT_SERVING (draining) gets no new calls;
- a bounded, visible retry: a call answered UNAVAILABLE is retried (up to `attempts`, within
  the caller's deadline) and both the first and the final status are recorded. RecordEvents
  is retried too: UNAVAILABLE means "not stored, retry" (an event may then be stored twice,
  never lost).

Mix: Recommend for known users, RecordEvents for a fresh user each (so every acknowledged
write can be checked afterwards), GetSimilarItems.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import grpc

from loadtest.schedule import arrival_offsets, run_schedule, split_offsets
from recserve.client.options import channel_options, service_config
from recserve.client.results import degraded_reason
from recserve.v1 import recommender_pb2 as pb
from recserve.v1 import types_pb2

RECOMMEND = "/recserve.v1.RecommenderService/Recommend"
RECORD = "/recserve.v1.RecommenderService/RecordEvents"
SIMILAR = "/recserve.v1.RecommenderService/GetSimilarItems"

# The client's service config (recserve.client, docs/reliability.md) without gRPC's own
# retries: this generator retries itself, so that it can record the first status as well.
CLIENT_SERVICE_CONFIG = service_config(retryable=())


@dataclass(frozen=True)
class LoadSpec:
    target: str
    rate: float  # requests per second, all operations together
    duration_s: float
    users: Sequence[str]  # known users (Recommend)
    items: Sequence[str]  # known items (RecordEvents, GetSimilarItems)
    write_prefix: str = "chaos-w"  # RecordEvents goes to user f"{write_prefix}{i}"
    recommend_share: float = 0.8
    record_share: float = 0.15  # the rest is GetSimilarItems
    k: int = 10
    timeout_s: float = 1.0
    attempts: int = 3  # 1 = no retries
    workers: int = 1
    channels_per_worker: int = 1
    seed: int = 1
    token: str | None = None


@dataclass
class Record:
    i: int
    op: str  # recommend | record | similar
    t: float  # scheduled send time (wall clock, s)
    latency: float  # completion - scheduled time (s)
    code: str  # final status
    first_code: str  # status of the first attempt
    attempts: int
    send_lag: float = 0.0  # actual send - scheduled (generator delay)
    degraded: str = ""
    version: str = ""
    user: str = ""
    items: list[str] = field(default_factory=list)
    accepted: int = 0
    detail: str = ""


def _plan(spec: LoadSpec, i: int) -> tuple[str, Any, str, list[str]]:
    """(op, request, user, items) for request i: deterministic in (seed, i)."""
    rng = random.Random(spec.seed * 1_000_003 + i)
    roll = rng.random()
    if roll < spec.recommend_share:
        user = spec.users[rng.randrange(len(spec.users))]
        return "recommend", pb.RecommendRequest(user_id=user, k=spec.k), user, []
    if roll < spec.recommend_share + spec.record_share:
        user = f"{spec.write_prefix}{i}"
        items = rng.sample(list(spec.items), 2)
        now_ms = int(time.time() * 1000)
        request = pb.RecordEventsRequest(
            user_id=user,
            events=[
                types_pb2.Event(item_id=item, timestamp_ms=now_ms + n)
                for n, item in enumerate(items)
            ],
        )
        return "record", request, user, items
    item = spec.items[rng.randrange(len(spec.items))]
    return "similar", pb.GetSimilarItemsRequest(item_id=item, k=spec.k), "", [item]


_METHODS: dict[str, tuple[str, Any]] = {
    "recommend": (RECOMMEND, pb.RecommendResponse),
    "record": (RECORD, pb.RecordEventsResponse),
    "similar": (SIMILAR, pb.GetSimilarItemsResponse),
}


async def _fire(
    spec: LoadSpec,
    channel: grpc.aio.Channel,
    i: int,
    due: float,
    metadata: tuple[tuple[str, str], ...],
) -> Record:
    op, request, user, items = _plan(spec, i)
    path, response_type = _METHODS[op]
    call = channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    # latency and send_lag are filled in from the schedule's measurement (_run_worker).
    record = Record(i=i, op=op, t=due, latency=0.0, code="", first_code="", attempts=0, user=user)
    deadline = due + spec.timeout_s
    while True:
        record.attempts += 1
        remaining = deadline - time.time()
        if remaining <= 0:
            record.code = record.code or "DEADLINE_EXCEEDED"
            break
        try:
            response = await call(request, timeout=remaining, metadata=metadata)
            record.code = "OK"
        except grpc.aio.AioRpcError as exc:
            record.code = exc.code().name
            record.detail = (exc.details() or "")[:200]
            response = None
        if not record.first_code:
            record.first_code = record.code
        if record.code != "UNAVAILABLE" or record.attempts >= spec.attempts:
            break
        await asyncio.sleep(0.01 * record.attempts)
    if response is not None:
        if op == "record":
            record.accepted = response.accepted
            record.items = items
        else:
            record.degraded = degraded_reason(response.degraded_reason) if response.degraded else ""
            if response.degraded:
                record.detail = response.degraded_detail[:200]
            record.version = response.model_version
            record.items = [item.item_id for item in response.items]
    elif op == "record":
        record.items = items
    return record


async def _run_worker(
    spec: LoadSpec, worker: int, start_at: float, stop: EventType
) -> list[Record]:
    options = channel_options(CLIENT_SERVICE_CONFIG, extra=[("grpc.use_local_subchannel_pool", 1)])
    channels = [
        grpc.aio.insecure_channel(spec.target, options=options)
        for _ in range(spec.channels_per_worker)
    ]
    metadata: tuple[tuple[str, str], ...] = (
        (("authorization", f"Bearer {spec.token}"),) if spec.token else ()
    )
    offsets = split_offsets(arrival_offsets(spec.rate, spec.duration_s), spec.workers)[worker]

    async def fire(k: int, due: float) -> Record:
        i = worker + k * spec.workers  # this worker's k-th request is the schedule's i-th
        return await _fire(spec, channels[k % len(channels)], i, due, metadata)

    try:
        # Wall clock: start_at is shared between processes and Record.t is wall time.
        done = await run_schedule(offsets, fire, start_at, clock=time.time, stop=stop.is_set)
    finally:
        for channel in channels:
            await channel.close()
    for record, latency, lag in zip(done.results, done.latency_s, done.send_lag_s, strict=True):
        record.latency = float(latency)
        record.send_lag = float(lag)
    return done.results


def _worker_main(
    spec: LoadSpec, worker: int, ready: Any, go: EventType, start_at: Any, stop: EventType, out: str
) -> None:
    import uvloop

    ready.wait()
    go.wait()
    records = uvloop.run(_run_worker(spec, worker, start_at.value, stop))
    Path(out).write_text(json.dumps([asdict(r) for r in records]))


class LoadRun:
    """`with LoadRun(spec, dir) as load:` ... `load.stop()`; then `load.records`."""

    def __init__(self, spec: LoadSpec, out_dir: Path):
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("spawn")
        self._ready = ctx.Barrier(spec.workers + 1)
        self._go = ctx.Event()
        self._stop = ctx.Event()
        self._start_at = ctx.Value("d", 0.0)
        self._outs = [self.out_dir / f"load-{w}.json" for w in range(spec.workers)]
        self._processes = [
            ctx.Process(
                target=_worker_main,
                args=(
                    spec,
                    w,
                    self._ready,
                    self._go,
                    self._start_at,
                    self._stop,
                    str(self._outs[w]),
                ),
                daemon=True,
            )
            for w in range(spec.workers)
        ]
        self.start_at = 0.0
        self.records: list[Record] = []

    def start(self) -> LoadRun:
        for out in self._outs:
            out.unlink(missing_ok=True)
        for process in self._processes:
            process.start()
        self._ready.wait(60)
        self.start_at = time.time() + 0.2
        self._start_at.value = self.start_at
        self._go.set()
        return self

    def elapsed(self) -> float:
        return time.time() - self.start_at

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> list[Record]:
        limit = (
            timeout_s if timeout_s is not None else self.spec.duration_s + self.spec.timeout_s + 60
        )
        for process in self._processes:
            process.join(max(1.0, self.start_at + limit - time.time()))
            if process.is_alive():
                process.kill()
                raise RuntimeError("load generator did not finish")
            if process.exitcode != 0:
                raise RuntimeError(f"load generator exited with {process.exitcode}")
        records: list[Record] = []
        for out in self._outs:
            records.extend(Record(**r) for r in json.loads(out.read_text()))
        records.sort(key=lambda r: r.i)
        self.records = records
        return records

    def __enter__(self) -> LoadRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if any(exc):
            for process in self._processes:
                process.kill()
            return
        self.join()


def iter_window(records: Sequence[Record], start: float, end: float) -> Iterator[Record]:
    """Records scheduled in [start, end) (wall clock)."""
    return (r for r in records if start <= r.t < end)
