"""Micro-batching keeps semantics: the same request gets the same answer batched or alone."""

from __future__ import annotations

import re
import threading
import urllib.request

import redis

from recserve.client import Recommendations, RecommenderClient
from recserve.devstack import Stack


def batched_queries(stack: Stack) -> float:
    """Queries the gateway sent to the ranking stage inside batches of more than one."""
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{stack.ports.metrics['gateway']}/metrics")
        .read()
        .decode()
    )
    buckets = {
        float(le): float(v)
        for le, v in re.findall(
            r'recserve_batch_size_bucket\{le="([^"]+)",stage="ranking"\} (\S+)', body
        )
        if le != "+Inf"
    }
    total = float(re.search(r'recserve_batch_size_count\{stage="ranking"\} (\S+)', body).group(1))  # type: ignore[union-attr]
    return total - buckets[1.0]


def test_concurrent_batched_answers_equal_sequential_answers(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    users = sorted(
        k.decode().split("{", 1)[1].split("}", 1)[0]
        for k in client.scan_iter(match="recserve:user:*:events")
    )[:48]
    with RecommenderClient(stack.address("gateway"), timeout_s=5) as rc:
        alone = {u: rc.recommend(u, k=10, include_stage_scores=True) for u in users}
    before = batched_queries(stack)
    together: dict[str, Recommendations] = {}
    barrier = threading.Barrier(len(users))

    def call(user: str) -> None:
        with RecommenderClient(stack.address("gateway"), timeout_s=5) as rc:
            barrier.wait()
            together[user] = rc.recommend(user, k=10, include_stage_scores=True)

    for _ in range(3):
        threads = [threading.Thread(target=call, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for user in users:
            assert together[user].items == alone[user].items, user
    # The concurrent rounds really were batched (otherwise this test would prove nothing).
    assert batched_queries(stack) > before
