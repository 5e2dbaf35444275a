"""Emulated recserve metrics endpoints (prometheus_client), one per service, for testing the
dashboards/alerts/adapter queries when the real stack is not running.

Exports the metric names and labels of docs/contracts.md with plausible traffic:
    python -m recserve.cluster.metrics_sim --ports gateway=9464,candidates=9465 --duration 60
Stops by itself after --duration seconds.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5)
METHODS = {
    "gateway": "Recommend",
    "embedding_store": "GetEmbeddings",
    "candidates": "Candidates",
    "ranking": "Rank",
}
STAGES = ("embedding_store", "candidates", "ranking")
REASONS = (
    "cold_start",
    "embedding_store_unavailable",
    "candidates_unavailable",
    "ranking_unavailable",
)
VERSION = "sim-20250601-1000"


class Service:
    def __init__(self, name: str, port: int, rng: random.Random) -> None:
        self.name, self.rng = name, rng
        reg = CollectorRegistry()
        ProcessCollector(registry=reg)
        self.duration = Histogram(
            "recserve_rpc_duration_seconds",
            "RPC latency",
            ["service", "method", "code"],
            buckets=BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "recserve_rpc_in_flight", "RPCs in flight", ["service", "method"], registry=reg
        )
        self.total = Counter(
            "recserve_rpc_total", "RPCs", ["service", "method", "code"], registry=reg
        )
        self.queries = Counter("recserve_queries", "Queries", ["service"], registry=reg)
        self.model = Gauge(
            "recserve_model_info", "Model version", ["service", "version"], registry=reg
        )
        self.reloads = Counter(
            "recserve_model_reloads_total", "Model reloads", ["service", "outcome"], registry=reg
        )
        if name == "gateway":
            self.stage = Histogram(
                "recserve_stage_duration_seconds",
                "Stage latency",
                ["stage"],
                buckets=BUCKETS,
                registry=reg,
            )
            self.degraded = Counter(
                "recserve_degraded_total", "Degraded responses", ["reason"], registry=reg
            )
            for reason in REASONS:
                self.degraded.labels(reason=reason)  # exported at 0 from the start
        self.model.labels(service=name, version=VERSION).set(1)
        self.reloads.labels(service=name, outcome="ok").inc()
        self.reloads.labels(service=name, outcome="error")
        start_http_server(port, addr="127.0.0.1", registry=reg)

    def tick(self) -> None:
        method = METHODS[self.name]
        for _ in range(self.rng.randint(5, 15)):
            code = "UNAVAILABLE" if self.rng.random() < 0.005 else "OK"
            latency = self.rng.lognormvariate(-4.0 if self.name != "gateway" else -3.2, 0.5)
            self.duration.labels(self.name, method, code).observe(latency)
            self.total.labels(self.name, method, code).inc()
            self.queries.labels(self.name).inc()
            if self.name == "gateway":
                parts = [self.rng.lognormvariate(-5.0, 0.5) for _ in STAGES]
                for stage, t in zip(STAGES, parts, strict=True):
                    self.stage.labels(stage).observe(t)
                self.stage.labels("total").observe(latency)
                if self.rng.random() < 0.01:
                    self.degraded.labels(
                        self.rng.choice(("ranking_timeout", "candidates_unavailable"))
                    ).inc()
        self.in_flight.labels(self.name, method).set(self.rng.randint(0, 12))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recserve.cluster.metrics_sim")
    p.add_argument("--ports", required=True, help="comma list of service=port")
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    services = []
    for item in args.ports.split(","):
        name, port = item.split("=")
        services.append(Service(name, int(port), rng))
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        for s in services:
            s.tick()
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
