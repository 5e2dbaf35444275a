"""Measures catalog propagation: SetAvailability returned → every gateway replica answers without
the taken-down item (and back after the item is restored).

Starts a local stack (real Redis, the four services, a small synthetic model) plus extra gateway
replicas, then per trial: takes the top item of one user's answer down through replica 0 and
polls `Recommend` on every replica until none returns it; the lag of the trial is the slowest
replica's. The polling is the light load (one caller per replica, 1 ms apart); the resolution is
one Recommend round trip. Prints p50/p99/max; timings are reported, never asserted.

    .venv/bin/python -m tools.catalog_propagation --replicas 3 --trials 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from recserve.devstack import Stack, StackPorts
from recserve.devstack.stack import free_port, wait_serving
from recserve.v1 import catalog_pb2, catalog_pb2_grpc, recommender_pb2, recommender_pb2_grpc

TRAIN_ARGS = ["--format", "synthetic", "--synthetic-items", "400", "--synthetic-users", "300",
              "--synthetic-events", "20000", "--seed", "7"]  # fmt: skip
USER = "1"


async def _top_item(stub: recommender_pb2_grpc.RecommenderServiceStub) -> str:
    answer = await stub.Recommend(recommender_pb2.RecommendRequest(user_id=USER, k=10))
    return str(answer.items[0].item_id)


async def _until(
    stub: recommender_pb2_grpc.RecommenderServiceStub, item_id: str, present: bool
) -> float:
    while True:
        answer = await stub.Recommend(recommender_pb2.RecommendRequest(user_id=USER, k=10))
        if (item_id in {i.item_id for i in answer.items}) == present:
            return time.perf_counter()
        await asyncio.sleep(0.001)


async def _measure(addresses: list[str], trials: int) -> tuple[list[float], list[float]]:
    channels = [grpc.aio.insecure_channel(a) for a in addresses]
    stubs = [recommender_pb2_grpc.RecommenderServiceStub(c) for c in channels]
    catalog = catalog_pb2_grpc.CatalogServiceStub(channels[0])
    takedown: list[float] = []
    restore: list[float] = []
    try:
        for _ in range(trials):
            item_id = await _top_item(stubs[0])
            for available, lags in ((False, takedown), (True, restore)):
                await catalog.SetAvailability(
                    catalog_pb2.SetAvailabilityRequest(item_ids=[item_id], available=available)
                )
                returned = time.perf_counter()
                seen = await asyncio.gather(*(_until(s, item_id, available) for s in stubs))
                lags.append(max(seen) - returned)
    finally:
        for channel in channels:
            await channel.close()
    return takedown, restore


def _report(name: str, lags: list[float]) -> None:
    ms = np.asarray(lags) * 1000
    print(
        f"{name}: n={ms.size} p50={np.percentile(ms, 50):.1f} ms "
        f"p99={np.percentile(ms, 99):.1f} ms max={ms.max():.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3, help="gateway replicas")
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="catalog-propagation-"))
    stack = Stack(root / "run", root / "bundles", StackPorts.free())
    extra: list[subprocess.Popen[bytes]] = []
    try:
        stack.up(train_args=TRAIN_ARGS, extra_env={"RECSERVE_LOG_LEVEL": "WARNING"})
        addresses = [stack.address("gateway")]
        for _ in range(args.replicas - 1):
            port = free_port()
            env = stack.service_env(
                "gateway",
                {
                    "RECSERVE_GRPC_PORT": str(port),
                    "RECSERVE_METRICS_PORT": str(free_port()),
                    "RECSERVE_LOG_LEVEL": "WARNING",
                },
            )
            extra.append(subprocess.Popen([sys.executable, "-m", "recserve.gateway"], env=env))
            addresses.append(f"127.0.0.1:{port}")
        for address in addresses:
            wait_serving(address, 60.0)
        takedown, restore = asyncio.run(_measure(addresses, args.trials))
        print(f"{args.replicas} gateway replicas, {os.cpu_count()} cores")
        _report("takedown (SetAvailability false returned -> absent on every replica)", takedown)
        _report("restore (SetAvailability true returned -> back on every replica)", restore)
    finally:
        for process in extra:
            process.terminate()
            process.wait(15)
        stack.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
