"""Open-loop (constant arrival rate) benchmark of Recommend with CPU accounting.

Requests are fired on the fixed schedule of `loadtest.schedule` whatever the server does, and
every latency is measured from the request's *scheduled* send time, so a stalled server or
generator shows up as latency instead of silently lowering the offered load (no coordinated
omission).

For each offered rate: achieved QPS, p50/p95/p99/p99.9, errors, degraded fraction, CPU ms
per request of the stack's processes (psutil, generator excluded) and of the generator,
and the gateway's per-stage latency from its Prometheus histograms. A step search finds the
highest rate with p99 <= each SLO. The bare echo server is measured the same way in the
same run as the Python-gRPC floor.

    python -m loadtest.openloop --out loadtest/results/openloop.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

import grpc
import numpy as np
import psutil

from loadtest import stack as stack_mod
from loadtest import stats
from loadtest.schedule import arrival_offsets, run_schedule, split_offsets
from loadtest.workload import RequestFactory, load_catalog
from recserve.v1 import recommender_pb2

RECOMMEND_PATH = "/recserve.v1.RecommenderService/Recommend"
OK_CODES = {"OK", "0"}
ACHIEVED_MIN_FRACTION = 0.95  # a step whose server completes < 95 % of the offered rate fails


# --- generators ------------------------------------------------------------------------------


@dataclass
class RawStep:
    """What a generator measured for one offered rate."""

    latency_s: np.ndarray
    send_lag_s: np.ndarray
    codes: Counter[str]
    degraded: int | None  # None: the generator cannot see it (h2load), use server metrics
    window_s: float  # first scheduled send to last completion
    generator_cpu_s: float
    generator: str


class Generator(Protocol):
    name: str

    def run(self, rate: float, duration_s: float) -> RawStep: ...

    def close(self) -> None: ...


def _worker_main(conn: Connection, target: str, pool: list[bytes], timeout_s: float) -> None:
    asyncio.run(_worker_loop(conn, target, pool, timeout_s))


async def _worker_loop(conn: Connection, target: str, pool: list[bytes], timeout_s: float) -> None:
    creds = stack_mod.channel_credentials()
    channel = grpc.aio.secure_channel(target, creds) if creds else grpc.aio.insecure_channel(target)
    # Requests are pre-serialized bytes: the generator spends no CPU encoding them.
    call = channel.unary_unary(
        RECOMMEND_PATH,
        request_serializer=None,
        response_deserializer=recommender_pb2.RecommendResponse.FromString,
    )
    metadata = stack_mod.call_metadata()
    loop = asyncio.get_running_loop()
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        if msg is None:
            break
        start_wall, offsets, first_req = msg

        async def fire(i: int, _due: float, first: int = first_req) -> tuple[str, bool]:
            try:
                resp = await call(
                    pool[(first + i) % len(pool)], timeout=timeout_s, metadata=metadata
                )
            except grpc.aio.AioRpcError as e:
                return e.code().name, False
            return "OK", bool(resp.degraded)

        start = time.perf_counter() + (start_wall - time.time())
        cpu0 = time.process_time()
        res = await run_schedule(offsets, fire, start)
        conn.send((res, time.process_time() - cpu0))
    await channel.close()


class PythonGenerator:
    """Several asyncio gRPC client processes sharing one evenly spaced schedule."""

    name = "python"

    def __init__(self, target: str, pool: list[bytes], workers: int, timeout_s: float) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(child, target, pool, timeout_s), daemon=True
            )
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.sent = 0

    def run(self, rate: float, duration_s: float) -> RawStep:
        parts = split_offsets(arrival_offsets(rate, duration_s), len(self.conns))
        # Lead time so every worker has the schedule before the first request is due.
        start_wall = time.time() + 0.3
        for k, (conn, offs) in enumerate(zip(self.conns, parts, strict=True)):
            conn.send((start_wall, offs, self.sent + k))
        results = [conn.recv() for conn in self.conns]
        self.sent += sum(len(p) for p in parts)
        sched = [r for r, _ in results]
        lat = np.concatenate([r.latency_s for r in sched])
        ends = np.concatenate([p + r.latency_s for p, r in zip(parts, sched, strict=True)])
        return RawStep(
            latency_s=lat,
            send_lag_s=np.concatenate([r.send_lag_s for r in sched]),
            codes=Counter(code for r in sched for code, _ in r.results),
            degraded=sum(degraded for r in sched for _, degraded in r.results),
            window_s=max(duration_s, float(ends.max()) if ends.size else 0.0),
            generator_cpu_s=sum(cpu for _, cpu in results),
            generator=self.name,
        )

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=5)


def grpc_frame(message: bytes) -> bytes:
    """gRPC length-prefixed message: uncompressed flag + 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def reconstruct_latency(
    start_s: np.ndarray, elapsed_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Latency from the scheduled send time for one h2load connection's log.

    h2load times a request from its actual send, so a send it delayed (timer starved of CPU,
    all streams busy) would hide that delay. Its sends follow a regular tick a hair slower
    than nominal (about 0.3 % here), so the schedule is fitted from the log itself: evenly
    spaced from first to last send, shifted so no send is early; each send's delay behind
    that line is added back. A generator that fell behind for good sends fewer requests than
    offered, which the achieved-rate check fails. Returns (latency, send lag).
    """
    order = np.argsort(start_s, kind="stable")
    starts = start_s[order]
    if starts.size < 2:
        return elapsed_s[order], np.zeros(starts.size)
    k = np.arange(starts.size)
    ahead = starts - (starts[0] + k * (starts[-1] - starts[0]) / (starts.size - 1))
    lag = ahead - ahead.min()
    return elapsed_s[order] + lag, lag


class H2LoadGenerator:
    """h2load processes, one connection and one request body each: native, about 10x cheaper
    per request than a Python client. It cannot read grpc-status or `degraded`, which then
    come from the gateway's own counters."""

    name = "h2load"
    # h2load's rate timer ticks at about 100 Hz: above 100 req/s a connection sends bursts,
    # so the rate is spread over enough connections to keep each one evenly spaced.
    max_rps_per_connection = 100.0

    def __init__(self, target: str, pool: list[bytes], processes: int, timeout_s: float) -> None:
        self.target = target
        self.pool = pool
        self.min_processes = processes
        self.timeout_s = timeout_s
        self.tmp = tempfile.TemporaryDirectory(prefix="recserve-h2load-")

    def _body(self, k: int) -> Path:
        path = Path(self.tmp.name) / f"body{k}.bin"
        if not path.exists():
            path.write_bytes(grpc_frame(self.pool[k % len(self.pool)]))
        return path

    def run(self, rate: float, duration_s: float) -> RawStep:
        nproc = max(self.min_processes, math.ceil(rate / self.max_rps_per_connection))
        per_proc = rate / nproc
        # Streams for everything that can be in flight until the deadline, so h2load never
        # has to hold a due request back (and any queueing is still added back below).
        streams = int(per_proc * self.timeout_s * 1.5) + 16
        headers = ["content-type: application/grpc", "te: trailers"]
        headers.append(f"grpc-timeout: {int(self.timeout_s * 1000)}m")
        headers += [f"{k}: {v}" for k, v in stack_mod.call_metadata()]
        procs = []
        logs = []
        for k in range(nproc):
            body = self._body(k)
            log = Path(self.tmp.name) / f"log{k}.tsv"
            log.unlink(missing_ok=True)  # h2load appends to an existing log
            logs.append(log)
            cmd = ["h2load", "-c1", "-t1", f"-m{streams}", f"--rps={per_proc:.6f}"]
            cmd += [f"-D{duration_s:g}", "-d", str(body), f"--log-file={log}"]
            cmd += [arg for h in headers for arg in ("-H", h)]
            cmd.append(f"http://{self.target}{RECOMMEND_PATH}")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        cpu = 0.0
        for p in procs:
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
        lats: list[np.ndarray] = []
        lags: list[np.ndarray] = []
        codes: Counter[str] = Counter()
        first, last = math.inf, -math.inf
        for log in logs:
            rows = np.loadtxt(log, dtype=np.float64, ndmin=2) if log.stat().st_size else None
            if rows is None or rows.size == 0:
                continue
            start_s, http_status, elapsed_s = rows[:, 0] / 1e6, rows[:, 1], rows[:, 2] / 1e6
            lat, lag = reconstruct_latency(start_s, elapsed_s)
            lats.append(lat)
            lags.append(lag)
            # HTTP 200 only says the call reached gRPC; grpc-status comes from server metrics.
            codes.update("OK" if s == 200 else f"HTTP_{int(s)}" for s in http_status)
            first = min(first, float(start_s.min()))
            last = max(last, float((start_s + elapsed_s).max()))
        # h2load stops at its duration and drops what is still in flight: at most what was
        # sent within the slowest latency seen. Anything missing beyond that was lost.
        expected = int(rate * duration_s)
        in_flight_at_end = math.ceil(rate * max((float(x.max()) for x in lats), default=0.0))
        missing = expected - sum(codes.values()) - in_flight_at_end
        if missing > 0:
            codes["NOT_COMPLETED"] += missing
        return RawStep(
            latency_s=np.concatenate(lats) if lats else np.zeros(0),
            send_lag_s=np.concatenate(lags) if lags else np.zeros(0),
            codes=codes,
            degraded=None,
            window_s=max(duration_s, last - first) if lats else duration_s,
            generator_cpu_s=cpu,
            generator=self.name,
        )

    def close(self) -> None:
        self.tmp.cleanup()


# --- CPU accounting --------------------------------------------------------------------------


def _cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime (all threads) of the given processes and every live descendant (services
    may fork workers); a process that is gone counts 0."""
    tree: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree.update((p.pid, p) for p in [root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
    total = 0.0
    for process in tree.values():
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _machine_busy_seconds() -> float:
    """All CPUs' non-idle time since boot: idle and iowait excluded; guest time is already
    part of user/nice, so it is not added again."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds per named group of processes, plus machine-wide busy seconds."""

    groups: dict[str, float]
    machine_busy: float

    @classmethod
    def take(cls, groups: Mapping[str, Iterable[int]]) -> CpuSnapshot:
        return cls(
            groups={name: _cpu_seconds(pids) for name, pids in groups.items()},
            machine_busy=_machine_busy_seconds(),
        )

    def minus(self, before: CpuSnapshot) -> CpuSnapshot:
        return CpuSnapshot(
            groups={k: v - before.groups.get(k, 0.0) for k, v in self.groups.items()},
            machine_busy=self.machine_busy - before.machine_busy,
        )


# --- one measured step -----------------------------------------------------------------------


@dataclass
class StepResult:
    offered_qps: float
    achieved_qps: float
    requests: int
    errors: int
    error_codes: dict[str, int]
    degraded_fraction: float | None
    latency: stats.LatencySummary
    send_lag_p99_ms: float
    window_s: float
    generator: str
    generator_cpu_ms_per_req: float
    generator_cores: float
    stack_cpu_ms_per_req: float | None
    stack_cpu_ms_per_req_by_process: dict[str, float]
    stack_cores: float | None
    machine_busy_cores: float
    other_cores: float  # machine busy minus stack and generator: other tenants of the box
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    # False when other tenants used more than the quiet limit in every attempt at this step:
    # such a step is kept for the record but is neither a pass nor a capacity figure.
    valid: bool = True
    attempts: int = 1

    def passes(self, slo_ms: float) -> bool:
        return (
            self.valid
            and self.errors == 0
            and self.achieved_qps >= ACHIEVED_MIN_FRACTION * self.offered_qps
            and self.latency.p99_ms <= slo_ms
        )

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> StepResult:
        d = dict(d)
        d["latency"] = stats.LatencySummary(**d["latency"])  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


def scrape(address: str | None) -> stats.Samples | None:
    if address is None:
        return None
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
            return stats.parse_exposition(resp.read().decode())
    except OSError:
        return None


def stage_breakdown(d: stats.Samples) -> dict[str, dict[str, float]]:
    """Per gateway stage over the step: latency from its histogram, and the mean number of
    queries per backend call when the gateway batches (recserve_batch_size)."""
    name = "recserve_stage_duration_seconds"
    out = {}
    for stage in stats.label_values(d, f"{name}_bucket", "stage"):
        h = stats.histogram(d, name, stage=stage)
        if h.count > 0:
            out[stage] = {
                "count": h.count,
                "mean_ms": h.mean * 1e3,
                "p50_ms": h.quantile(0.5) * 1e3,
                "p99_ms": h.quantile(0.99) * 1e3,
            }
            batch = stats.histogram(d, "recserve_batch_size", stage=stage)
            if batch.count > 0:
                out[stage]["batch_mean"] = batch.mean
    return out


@dataclass(frozen=True)
class QuietPolicy:
    """When a step counts: other tenants (everything but the stack and the generator, our own
    tests and builds included) used at most `max_other_cores` before and during it. A noisy
    step is waited out and retried; after `retries` noisy attempts it is recorded invalid."""

    max_other_cores: float = 0.15
    retries: int = 4
    probe_s: float = 2.0
    max_wait_s: float = 120.0


class Runner:
    """Measures one target (the stack or the echo server) at a given offered rate, only while
    the machine is quiet (QuietPolicy)."""

    def __init__(
        self,
        stack: stack_mod.Stack,
        generator: Generator,
        duration_s: float,
        quiet: QuietPolicy | None = None,
    ) -> None:
        self.stack = stack
        self.generator = generator
        self.duration_s = duration_s
        self.quiet = quiet or QuietPolicy()

    def _groups(self) -> dict[str, list[int]]:
        return {name: [pid] for name, pid in self.stack.pids.items()}

    def other_cores_now(self) -> float:
        """Cores used by everything but the (idle) stack over a short probe."""
        before = CpuSnapshot.take(self._groups())
        time.sleep(self.quiet.probe_s)
        delta = CpuSnapshot.take(self._groups()).minus(before)
        return max(0.0, (delta.machine_busy - sum(delta.groups.values())) / self.quiet.probe_s)

    def wait_until_quiet(self) -> float:
        """Probes until other tenants are under the limit or max_wait_s passed; returns the last
        reading."""
        deadline = time.monotonic() + self.quiet.max_wait_s
        while True:
            other = self.other_cores_now()
            if other <= self.quiet.max_other_cores or time.monotonic() >= deadline:
                return other
            print(
                f"  waiting: other tenants use {other:.2f} cores "
                f"(limit {self.quiet.max_other_cores:.2f})",
                flush=True,
            )

    def measure(self, rate: float) -> StepResult:
        result: StepResult | None = None
        for attempt in range(1, self.quiet.retries + 2):
            before = self.wait_until_quiet()
            result = self._measure_once(rate)
            result.attempts = attempt
            noisy = max(before, result.other_cores)
            if noisy <= self.quiet.max_other_cores:
                return result
            print(
                f"  step at {rate:.0f} QPS not recorded: other tenants used {noisy:.2f} cores "
                f"(limit {self.quiet.max_other_cores:.2f}); attempt {attempt}",
                flush=True,
            )
        assert result is not None
        result.valid = False
        return result

    def _measure_once(self, rate: float) -> StepResult:
        groups = self._groups()
        metrics0 = scrape(self.stack.gateway_metrics)
        cpu0 = CpuSnapshot.take(groups)
        t0 = time.monotonic()
        raw = self.generator.run(rate, self.duration_s)
        wall = time.monotonic() - t0
        cpu = CpuSnapshot.take(groups).minus(cpu0)
        metrics1 = scrape(self.stack.gateway_metrics)
        mdelta = stats.delta(metrics1, metrics0) if metrics0 and metrics1 else None

        n = int(raw.latency_s.size)
        codes = Counter(raw.codes)
        degraded = raw.degraded
        if mdelta is not None and raw.degraded is None:
            # h2load sees HTTP only: take grpc codes and degraded answers from the gateway
            # (the only server of a method named Recommend).
            by_code = {
                dict(lb).get("grpc_code", ""): v
                for (name, lb), v in mdelta.items()
                if name == "recserve_rpc_total"
                and dict(lb).get("grpc_method") == "Recommend"
                and v > 0
            }
            for code, v in by_code.items():
                # h2load resets the streams still open when its duration ends: the gateway
                # counts those as CANCELLED, which is the generator's doing, not an error.
                if code not in OK_CODES and code != "CANCELLED":
                    codes[code] += int(v)
                    codes["OK"] -= int(v)
            degraded = int(stats.sum_samples(mdelta, "recserve_degraded_total"))
        errors = sum(v for c, v in codes.items() if c not in OK_CODES)
        ok = n - errors
        stack_cpu = sum(cpu.groups.values()) if self.stack.pids else None
        gen_cores = raw.generator_cpu_s / wall
        stack_cores = stack_cpu / wall if stack_cpu is not None else None
        busy = cpu.machine_busy / wall
        return StepResult(
            offered_qps=rate,
            achieved_qps=ok / raw.window_s if raw.window_s > 0 else 0.0,
            requests=n,
            errors=errors,
            error_codes={c: v for c, v in codes.items() if c not in OK_CODES and v},
            degraded_fraction=(degraded / n if degraded is not None and n else None),
            latency=stats.LatencySummary.of(raw.latency_s),
            send_lag_p99_ms=stats.percentile(raw.send_lag_s, 99) * 1e3 if n else math.nan,
            window_s=raw.window_s,
            generator=raw.generator,
            generator_cpu_ms_per_req=raw.generator_cpu_s / n * 1e3 if n else math.nan,
            generator_cores=gen_cores,
            stack_cpu_ms_per_req=stack_cpu / n * 1e3 if stack_cpu is not None and n else None,
            stack_cpu_ms_per_req_by_process={k: v / n * 1e3 for k, v in cpu.groups.items()}
            if n
            else {},
            stack_cores=stack_cores,
            machine_busy_cores=busy,
            other_cores=max(0.0, busy - gen_cores - (stack_cores or 0.0)),
            stages=stage_breakdown(mdelta) if mdelta else {},
        )


# --- step search -----------------------------------------------------------------------------


def best_rate(results: dict[float, StepResult], slo_ms: float) -> float | None:
    """Highest passing rate below the lowest failing one (a lucky pass above a failure is
    noise, not capacity)."""
    failing = [r for r, s in results.items() if not s.passes(slo_ms)]
    ceiling = min(failing, default=math.inf)
    passing = [r for r, s in results.items() if s.passes(slo_ms) and r < ceiling]
    return max(passing, default=None)


def step_search(
    measure: Callable[[float], StepResult],
    start: float,
    factor: float,
    max_rate: float,
    slos_ms: Sequence[float],
    refine: int,
    log: Callable[[StepResult], None] = lambda _: None,
) -> tuple[list[StepResult], dict[float, float | None]]:
    """Geometric ladder until the loosest SLO fails, then bisect towards each SLO's limit."""
    results: dict[float, StepResult] = {}

    def at(rate: float) -> StepResult:
        rate = float(round(rate))
        if rate not in results:
            results[rate] = measure(rate)
            log(results[rate])
        return results[rate]

    rate = start
    while rate <= max_rate and at(rate).passes(max(slos_ms)):
        rate *= factor
    for slo in sorted(slos_ms):
        for _ in range(refine):
            lo = best_rate(results, slo)
            hi = min((r for r, s in results.items() if not s.passes(slo)), default=None)
            if lo is None or hi is None or hi - lo <= max(2.0, 0.04 * lo):
                break
            at((lo + hi) / 2)
    steps = [results[r] for r in sorted(results)]
    return steps, {slo: best_rate(results, slo) for slo in slos_ms}


# --- CLI -------------------------------------------------------------------------------------


def make_generator(
    kind: str, target: str, pool: list[bytes], workers: int, timeout_s: float
) -> Generator:
    if kind == "auto":
        plain = "://" not in target and not os.environ.get(stack_mod.TLS_CA_ENV)
        kind = "h2load" if plain and shutil.which("h2load") else "python"
    if kind == "h2load":
        return H2LoadGenerator(target, pool, processes=max(workers, 4), timeout_s=timeout_s)
    return PythonGenerator(target, pool, workers=workers, timeout_s=timeout_s)


def print_step(label: str) -> Callable[[StepResult], None]:
    def log(s: StepResult) -> None:
        cpu = f"{s.stack_cpu_ms_per_req:.2f}" if s.stack_cpu_ms_per_req is not None else "-"
        print(
            f"[{label}]{'' if s.valid else ' INVALID (machine never quiet)'} offered {s.offered_qps:6.0f}  achieved {s.achieved_qps:6.0f}  "
            f"p50 {s.latency.p50_ms:6.1f}  p99 {s.latency.p99_ms:7.1f}  "
            f"p99.9 {s.latency.p999_ms:7.1f} ms  err {s.errors}  cpu/req {cpu} ms  "
            f"gen {s.generator_cpu_ms_per_req:.2f} ms ({s.generator_cores:.2f} cores)  "
            f"other {s.other_cores:.2f} cores",
            flush=True,
        )

    return log


def run_target(
    label: str, stack: stack_mod.Stack, pool: list[bytes], args: argparse.Namespace
) -> dict[str, object]:
    gen = make_generator(args.generator, stack.target, pool, args.workers, args.timeout_s)
    quiet = QuietPolicy(max_other_cores=args.max_other_cores, retries=args.quiet_retries)
    try:
        runner = Runner(stack, gen, args.duration, quiet)
        # Warm-up (connections, caches, JIT-free but lazy imports): not recorded.
        Runner(stack, gen, min(2.0, args.duration), quiet)._measure_once(args.start_rate)
        steps, best = step_search(
            runner.measure,
            args.start_rate,
            args.factor,
            args.max_rate,
            args.slo_ms,
            args.refine,
            print_step(label),
        )
    finally:
        gen.close()
    return {
        "target": stack.target,
        "generator": gen.name,
        "pids": stack.pids,
        "steps": [asdict(s) for s in steps],
        "best_rate": {str(int(k)): v for k, v in best.items()},
        "valid": all(s.valid for s in steps),
    }


def summarize(result: dict[str, dict[str, object]], slos_ms: Sequence[float]) -> dict[str, object]:
    """Headline numbers: best rates, CPU/request at the best rate, stack-to-echo ratio."""
    out: dict[str, object] = {}
    for label, res in result.items():
        steps = [StepResult.from_dict(s) for s in res["steps"]]  # type: ignore[attr-defined]
        best = res["best_rate"]
        entry: dict[str, object] = {}
        for slo in slos_ms:
            rate = best[str(int(slo))]  # type: ignore[index]
            at = next((s for s in steps if s.offered_qps == rate), None)
            entry[f"max_qps_p99_le_{int(slo)}ms"] = rate
            if at is not None:
                entry[f"at_{int(slo)}ms"] = {
                    "p50_ms": at.latency.p50_ms,
                    "p99_ms": at.latency.p99_ms,
                    "stack_cpu_ms_per_req": at.stack_cpu_ms_per_req,
                    "generator_cpu_ms_per_req": at.generator_cpu_ms_per_req,
                    "degraded_fraction": at.degraded_fraction,
                }
        out[label] = entry
    if "stack" in out and "echo" in out:
        for slo in slos_ms:
            key = f"max_qps_p99_le_{int(slo)}ms"
            s, e = out["stack"][key], out["echo"][key]  # type: ignore[index]
            out[f"stack_over_echo_{int(slo)}ms"] = s / e if s and e else None
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", help="gateway host:port (default: $RECSERVE_TARGET, stack json)")
    p.add_argument(
        "--stack-json", type=Path, help="default: $RECSERVE_STACK_JSON or run/stack.json"
    )
    p.add_argument("--no-stack", action="store_true", help="measure only the echo server")
    p.add_argument("--no-echo", action="store_true", help="skip the echo-server floor")
    p.add_argument("--generator", choices=("auto", "h2load", "python"), default="auto")
    p.add_argument("--workers", type=int, default=2, help="python processes / h2load conns (min 4)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    p.add_argument("--start-rate", type=float, default=100.0)
    p.add_argument("--factor", type=float, default=1.5, help="ladder multiplier")
    p.add_argument("--max-rate", type=float, default=6000.0)
    p.add_argument("--refine", type=int, default=2, help="bisection steps per SLO")
    p.add_argument("--slo-ms", type=float, nargs="+", default=[200.0, 50.0])
    p.add_argument("--timeout-s", type=float, default=1.0, help="per-request deadline")
    p.add_argument("--pool", type=int, default=2000, help="distinct requests (python generator)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    p.add_argument("--bundles", type=Path, default=Path("bundles"))
    p.add_argument("--out", type=Path, default=Path("loadtest/results/openloop.json"))
    p.add_argument("--png", type=Path, help="default: --out with .png")
    p.add_argument(
        "--max-other-cores",
        type=float,
        default=QuietPolicy.max_other_cores,
        help="a step counts only while other tenants use at most this many cores",
    )
    p.add_argument("--quiet-retries", type=int, default=QuietPolicy.retries)
    args = p.parse_args(argv)

    catalog = load_catalog(args.data_dir, args.bundles)
    pool = list(RequestFactory(catalog, args.seed).recommend_pool(args.pool))
    targets: list[tuple[str, stack_mod.Stack | None]] = []
    if not args.no_stack:
        targets.append(("stack", stack_mod.resolve(args.target, args.stack_json)))
    if not args.no_echo:
        targets.append(("echo", None))

    result: dict[str, dict[str, object]] = {}
    for label, st in targets:
        if st is None:
            with stack_mod.echo_server() as echo:
                result[label] = run_target(label, echo, pool, args)
        else:
            result[label] = run_target(label, st, pool, args)

    doc = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(
                [Path(sys.executable).name, "-m", "loadtest.openloop", *sys.argv[1:]]
            ),
            "machine": f"{platform.node()} {os.cpu_count()} CPUs {platform.processor()}".strip(),
            "load_average_at_end": os.getloadavg(),
            "catalog": catalog.source,
            "duration_s": args.duration,
            "slo_ms": args.slo_ms,
            "timeout_s": args.timeout_s,
        },
        "targets": result,
        "summary": summarize(result, args.slo_ms),
        # Publishable only when every step ran on a quiet machine (QuietPolicy).
        "valid": all(bool(r["valid"]) for r in result.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    print(json.dumps(doc["summary"], indent=1, default=float))
    if not doc["valid"]:
        print(
            f"RUN INVALID: other tenants used more than {args.max_other_cores} cores during "
            "some steps in every attempt; do not publish these figures",
            file=sys.stderr,
        )

    from loadtest import plots

    plots.plot_openloop(doc, args.png or args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
