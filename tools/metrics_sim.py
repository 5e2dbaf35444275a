"""An emulated metrics endpoint of one recserve component, for checking the dashboards, alerts
and adapter queries when the real stack is not running.

It exports the services' own metric objects (recserve.runtime.metrics: same names, labels
and buckets) through the services' own `start_metrics_server`, with the gRPC service and
method names of the component's proto descriptor and plausible traffic:

    python -m tools.metrics_sim --component gateway [--port 9464] [--duration 60]

Prints the bound port on the first line of stdout (--port 0, the default, picks a free
one) and stops by itself after --duration seconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence

from google.protobuf.descriptor import ServiceDescriptor

from recserve.gateway.domain import Degraded
from recserve.runtime import metrics as m
from recserve.v1 import candidates_pb2, embedding_store_pb2, ranking_pb2, recommender_pb2

COMPONENTS: dict[str, ServiceDescriptor] = {
    "gateway": recommender_pb2.DESCRIPTOR.services_by_name["RecommenderService"],
    "embedding_store": embedding_store_pb2.DESCRIPTOR.services_by_name["EmbeddingStoreService"],
    "candidates": candidates_pb2.DESCRIPTOR.services_by_name["CandidateService"],
    "ranking": ranking_pb2.DESCRIPTOR.services_by_name["RankingService"],
}
# The gateway method that fans out to the backends; its stages are the backend components.
FAN_OUT = COMPONENTS["gateway"].methods_by_name["Recommend"]
STAGES = ("embedding_store", "candidates", "ranking")
VERSION = "sim-20250601-1000"


class Simulator:
    """Feeds the process-wide metrics as one component would."""

    def __init__(self, component: str, rng: random.Random) -> None:
        self.service, self.rng = COMPONENTS[component], rng
        self.methods = [meth.name for meth in self.service.methods]
        self.gateway = component == "gateway"
        m.MODEL_INFO.labels(VERSION).set(1)
        m.MODEL_RELOADS.labels("ok").inc()
        m.MODEL_RELOADS.labels("error")  # exported at 0 from the start
        m.MODEL_LOAD_FAILING.set(0)
        if self.gateway:
            for reason in Degraded:
                m.DEGRADED.labels(reason.value)

    def tick(self) -> None:
        rng, name = self.rng, self.service.full_name
        for _ in range(rng.randint(5, 15)):
            method = rng.choice(self.methods)
            code = "UNAVAILABLE" if rng.random() < 0.005 else "OK"
            latency = rng.lognormvariate(-3.2 if self.gateway else -4.0, 0.5)
            m.RPC_DURATION.labels(name, method, code).observe(latency)
            m.RPC_TOTAL.labels(name, method, code).inc()
            batch = 1 if self.gateway else rng.randint(1, 8)
            m.QUERIES.inc(batch)
            if method == FAN_OUT.name:
                for stage in STAGES:
                    m.STAGE_DURATION.labels(stage).observe(rng.lognormvariate(-5.0, 0.5))
                    m.BATCH_SIZE.labels(stage).observe(rng.randint(1, 8))
                m.STAGE_DURATION.labels("total").observe(latency)
                if rng.random() < 0.01:
                    m.DEGRADED.labels(rng.choice(list(Degraded)).value).inc()
        for method in self.methods:
            m.RPC_IN_FLIGHT.labels(name, method).set(rng.randint(0, 4))
        if self.gateway:
            m.CATALOG_ITEMS.set(1682)
            m.CATALOG_AVAILABLE_ITEMS.set(1682 - rng.randint(0, 20))
            m.CATALOG_PROPAGATION.observe(rng.lognormvariate(-6.0, 0.5))
            m.NEW_ITEM_FIRST_RECOMMENDATION.observe(rng.lognormvariate(3.0, 1.0))
            m.COLD_START_SERVED.inc(rng.randint(0, 3))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.metrics_sim")
    p.add_argument("--component", required=True, choices=sorted(COMPONENTS))
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    sim = Simulator(args.component, random.Random(args.seed))
    print(m.start_metrics_server(args.port, host="127.0.0.1"), flush=True)
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        sim.tick()
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
