"""The chaos harness's own parts: DNS, client-side balancing over it, the load generator's
accounting and retries, the summaries and the write check."""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from chaos import dns, stats
from chaos.load import CLIENT_SERVICE_CONFIG, LoadRun, LoadSpec, Record
from chaos.oracle import verify_writes
from recserve.devstack.stack import free_port
from recserve.model import RedisLayout
from recserve.v1 import recommender_pb2 as pb

needs_dnsmasq = pytest.mark.skipif(
    not dns.available(), reason="dnsmasq not installed (apt-get install dnsmasq-base)"
)


def test_dnsmasq_argv_is_loopback_only_without_upstream() -> None:
    argv = dns.dnsmasq_argv(5353, {"a.test": ["127.0.0.2", "127.0.0.3"]})
    assert "--listen-address=127.0.0.1" in argv and "--bind-interfaces" in argv
    assert "--no-resolv" in argv and "--no-hosts" in argv and "--conf-file=/dev/null" in argv
    assert argv.count("--host-record=a.test,127.0.0.2") == 1
    assert argv.count("--host-record=a.test,127.0.0.3") == 1


class FakeGateway:
    """RecommenderService on one loopback address; optionally UNAVAILABLE for some requests."""

    def __init__(self, host: str, port: int, fail_first: set[str] | None = None):
        self.host = host
        self.calls: list[str] = []
        self._fail_first = set(fail_first or ())
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(8))
        health_pb2_grpc.add_HealthServicer_to_server(self._health(), self.server)
        handlers = {
            "Recommend": grpc.unary_unary_rpc_method_handler(
                self.recommend,
                pb.RecommendRequest.FromString,
                pb.RecommendResponse.SerializeToString,
            ),
            "RecordEvents": grpc.unary_unary_rpc_method_handler(
                self.record,
                pb.RecordEventsRequest.FromString,
                pb.RecordEventsResponse.SerializeToString,
            ),
            "GetSimilarItems": grpc.unary_unary_rpc_method_handler(
                self.similar,
                pb.GetSimilarItemsRequest.FromString,
                pb.GetSimilarItemsResponse.SerializeToString,
            ),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("recserve.v1.RecommenderService", handlers),)
        )
        assert self.server.add_insecure_port(f"{host}:{port}") == port
        self.server.start()

    @staticmethod
    def _health() -> health.HealthServicer:
        servicer = health.HealthServicer()
        servicer.set("readiness", 1)  # SERVING
        return servicer

    def _maybe_fail(self, key: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append(key)
            if key in self._fail_first:
                self._fail_first.discard(key)
                context.abort(grpc.StatusCode.UNAVAILABLE, "try another replica")

    def recommend(
        self, request: pb.RecommendRequest, context: grpc.ServicerContext
    ) -> pb.RecommendResponse:
        self._maybe_fail(request.user_id, context)
        return pb.RecommendResponse(model_version="v1", items=[{"item_id": "i1", "score": 1.0}])

    def record(
        self, request: pb.RecordEventsRequest, context: grpc.ServicerContext
    ) -> pb.RecordEventsResponse:
        self._maybe_fail(request.user_id, context)
        return pb.RecordEventsResponse(accepted=len(request.events))

    def similar(
        self, request: pb.GetSimilarItemsRequest, context: grpc.ServicerContext
    ) -> pb.GetSimilarItemsResponse:
        self._maybe_fail(request.item_id, context)
        return pb.GetSimilarItemsResponse(model_version="v1")


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[dns.Dnsmasq]:
    server = dns.Dnsmasq(
        tmp_path / "dnsmasq.log", {"gateway.recserve.test": ["127.0.0.2", "127.0.0.3"]}
    )
    server.start()
    yield server
    server.stop()


@needs_dnsmasq
def test_grpc_resolves_through_dnsmasq_and_balances_over_both_addresses(
    dnsmasq: dns.Dnsmasq,
) -> None:
    assert sorted(dns.query_a("gateway.recserve.test", dnsmasq.port)) == ["127.0.0.2", "127.0.0.3"]
    port = free_port()
    replicas = [FakeGateway(host, port) for host in ("127.0.0.2", "127.0.0.3")]
    try:
        target = f"dns://127.0.0.1:{dnsmasq.port}/gateway.recserve.test:{port}"
        options = [("grpc.service_config", json.dumps(CLIENT_SERVICE_CONFIG))]
        with grpc.insecure_channel(target, options=options) as channel:
            call = channel.unary_unary(
                "/recserve.v1.RecommenderService/Recommend",
                request_serializer=pb.RecommendRequest.SerializeToString,
                response_deserializer=pb.RecommendResponse.FromString,
            )
            for n in range(40):
                call(pb.RecommendRequest(user_id=str(n), k=1), timeout=5)
        # round_robin: an even split (the first calls may go out before both connections are
        # up), not one pinned connection.
        assert all(15 <= len(r.calls) <= 25 for r in replicas), [len(r.calls) for r in replicas]
    finally:
        for replica in replicas:
            replica.server.stop(None)


def test_load_generator_is_open_loop_and_retries_unavailable(tmp_path: Path) -> None:
    port = free_port()
    users = [f"u{i}" for i in range(5)]
    gateway = FakeGateway("127.0.0.1", port, fail_first={"u3", "chaos-w7"})
    try:
        spec = LoadSpec(
            target=f"127.0.0.1:{port}",
            rate=50,
            duration_s=1.0,
            users=users,
            items=["i1", "i2", "i3"],
            recommend_share=0.6,
            record_share=0.3,
            seed=3,
        )
        with LoadRun(spec, tmp_path) as load:
            pass  # stop() at once: what was scheduled before is still awaited
        records = LoadRun(spec, tmp_path).start().join()
    finally:
        gateway.server.stop(None)
    assert load.records == [] or all(r.i < 50 for r in load.records)
    assert [r.i for r in records] == list(range(50))
    ops = {r.op for r in records}
    assert ops == {"recommend", "record", "similar"}
    assert all(r.code == "OK" for r in records)
    retried = [r for r in records if r.attempts > 1]
    assert retried and all(r.first_code == "UNAVAILABLE" and r.attempts == 2 for r in retried)
    writes = [r for r in records if r.op == "record"]
    assert all(
        r.user.startswith("chaos-w") and len(r.items) == 2 and r.accepted == 2 for r in writes
    )
    # Scheduled i / rate apart, whatever the answers did.
    gaps = [b.t - a.t for a, b in itertools.pairwise(records)]
    assert all(math.isclose(g, 1 / 50, abs_tol=1e-6) for g in gaps)


def record(i: int, op: str, code: str = "OK", **kw: object) -> Record:
    values: dict[str, object] = {
        "i": i,
        "op": op,
        "t": float(i),
        "latency": 0.01 * (i + 1),
        "code": code,
        "first_code": code,
        "attempts": 1,
    }
    values.update(kw)
    return Record(**values)  # type: ignore[arg-type]


def test_summary_counts_failures_retries_degraded_and_budget() -> None:
    records = [
        record(0, "recommend"),
        record(1, "recommend", degraded="ranking_unavailable"),
        record(2, "recommend", first_code="UNAVAILABLE", attempts=2),
        record(3, "record", code="UNAVAILABLE", attempts=3),
        record(40, "similar"),  # latency 0.41 s
    ]
    summary = stats.summarize(records, budget_s=0.2, slack_s=0.1)
    assert summary["all"]["sent"] == 5 and summary["all"]["failed"] == 1
    assert summary["all"]["failed_codes"] == {"UNAVAILABLE": 1}
    assert summary["all"]["first_attempt_failed"] == 2 and summary["all"]["retried"] == 2
    assert summary["all"]["degraded"] == 1 and summary["all"]["over_budget"] == 1
    assert summary["reads"]["sent"] == 4 and summary["reads"]["failed"] == 0


def test_latency_percentiles_are_nearest_rank_like_the_benchmarks() -> None:
    # 1..100 ms: nearest rank gives observed samples (interpolation would say 50.5 and 99.01).
    latencies = [i / 1000 for i in range(100, 0, -1)]
    assert stats.percentiles_ms(latencies) == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert stats.percentiles_ms([]) == {"p50": None, "p99": None, "max": None}


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.01: 50.0, 0.1: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert stats.histogram_quantile(buckets, 0.5) == pytest.approx(0.01)
    assert stats.histogram_quantile(buckets, 0.7) == pytest.approx(0.055)
    assert stats.histogram_quantile(buckets, 0.99) == pytest.approx(0.91)
    assert stats.histogram_quantile({math.inf: 0.0}, 0.5) is None
    assert stats.histogram_quantile({}, 0.5) is None
    assert stats.histogram_quantile({0.01: 50.0, math.inf: 100.0}, 0.9) == 0.01  # +Inf bucket
    samples = {
        'h_bucket{code="OK",le="0.01",method="M"}': 3.0,
        'h_bucket{code="OK",le="+Inf",method="M"}': 4.0,
        'h_bucket{code="X",le="+Inf",method="M"}': 9.0,
    }
    assert stats.histogram_buckets(samples, "h", {"code": "OK"}) == {0.01: 3.0, math.inf: 4.0}


def test_verify_writes_finds_lost_and_unacknowledged_writes(redis_client) -> None:  # type: ignore[no-untyped-def]
    layout = RedisLayout()
    redis_client.lpush(layout.user_events_key("kept"), "b", "a")
    redis_client.lpush(layout.user_events_key("late"), "x")
    records = [
        record(0, "record", user="kept", items=["a", "b"], accepted=2),
        record(1, "record", user="lost", items=["c", "d"], accepted=2),
        record(2, "record", code="UNAVAILABLE", user="late", items=["x", "y"]),
        record(3, "record", code="UNAVAILABLE", user="never", items=["z", "w"]),
    ]
    result = verify_writes(redis_client, records)
    assert result["acknowledged"] == 2 and result["acknowledged_lost"] == 1
    assert result["lost_examples"] == ["lost"]
    assert result["not_acknowledged"] == 2 and result["not_acknowledged_but_stored"] == 1
