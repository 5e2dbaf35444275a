"""CPU per request of the local stack with tracing off, sampled at 1 %, and at 100 %.

    python -m loadtest.tracing_cost [--requests 3000] [--rate 150] [--bundles DIR]

For each mode it starts a fresh stack (redis-server + four services, free ports) whose OTEL_*
variables export to a real OTLP/gRPC receiver in this process, sends `--requests` Recommend
calls at `--rate` per second (open loop, one generator process), and reads each service's CPU
(utime + stime) before and after. Trains a small synthetic bundle first when `--bundles` has
none. Numbers are only as quiet as the machine: compare modes from one run.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

import redis

from loadtest.openloop import CpuSnapshot, PythonGenerator
from loadtest.otlp_receiver import otel_env, serve_receiver
from recserve.devstack import SERVICES, Stack, StackPorts
from recserve.v1 import recommender_pb2

# name -> OTEL_* for the services ({} = tracing off); the sampler is the one docs/contracts.md
# recommends for production.
MODES: dict[str, dict[str, str]] = {
    "off": {},
    "1%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "100%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"},
}
TRAIN_ARGS = "--format synthetic --synthetic-items 2000 --synthetic-users 1000 --synthetic-events 50000 --seed 3"


def request_pool(stack: Stack, size: int = 500) -> list[bytes]:
    """Serialized Recommend requests for users with history (the full pipeline runs)."""
    client = redis.Redis.from_url(stack.admin_redis_url)
    keys = sorted(client.scan_iter(match="recserve:user:*:events", count=1000))[:size]
    users = [k.decode().split("{", 1)[1].split("}", 1)[0] for k in keys]
    return [recommender_pb2.RecommendRequest(user_id=u, k=10).SerializeToString() for u in users]


def measure(
    run_dir: Path, bundles: Path, env: Mapping[str, str], requests: int, rate: float
) -> tuple[dict[str, float], int, int]:
    """CPU ms per request by service, requests answered with OK, and spans received."""
    with serve_receiver() as (receiver, port):
        extra = {**otel_env(port), **env} if env else {}
        stack = Stack(run_dir, bundles, StackPorts.free())
        try:
            stack.up(
                train_args=shlex.split(TRAIN_ARGS),
                extra_env={"RECSERVE_LOG_LEVEL": "WARNING", **extra},
            )
            pids = {s: [pid] for s in SERVICES if (pid := stack.pid(s)) is not None}
            generator = PythonGenerator(stack.address("gateway"), request_pool(stack), 1, 2.0)
            try:
                generator.run(rate, 2.0)  # warm-up: connections, first-query costs
                before = CpuSnapshot.take(pids)
                step = generator.run(rate, requests / rate)
                delta = CpuSnapshot.take(pids).minus(before)
            finally:
                generator.close()
        finally:
            stack.down()
        spans = len(receiver.spans())
    sent = len(step.latency_s)
    return {s: 1000 * cpu / sent for s, cpu in delta.groups.items()}, step.codes["OK"], spans


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--bundles", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tracing-cost-") as tmp:
        bundles = args.bundles or Path(tmp) / "bundles"
        rows = {}
        for mode, env in MODES.items():
            print(f"measuring tracing {mode} ...", flush=True)
            rows[mode] = measure(Path(tmp) / mode, bundles, env, args.requests, args.rate)
    print(f"\n{args.requests} Recommend requests at {args.rate:.0f}/s; CPU ms per request")
    header = ["tracing", *SERVICES, "total", "ok", "spans"]
    print(" | ".join(f"{h:>15}" for h in header))
    for mode, (cpu, ok, spans) in rows.items():
        cells = [mode, *(f"{cpu[s]:.3f}" for s in SERVICES), f"{sum(cpu.values()):.3f}", ok, spans]
        print(" | ".join(f"{c:>15}" for c in cells))


if __name__ == "__main__":
    main()
