"""Traces from the real stack (redis-server + four service processes) exported over OTLP/gRPC
to a real receiver: one connected trace per lone request, linked batch spans under load, and
nothing exported with tracing off."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from loadtest.otlp_receiver import (
    CLIENT,
    INTERNAL,
    SERVER,
    ReceivedSpan,
    Receiver,
    otel_env,
    serve_receiver,
)
from recserve.devstack import Stack
from recserve.v1 import recommender_pb2, recommender_pb2_grpc
from tests.integration.conftest import start_stack
from tests.integration.test_serving import known_users

pytestmark = pytest.mark.slow

SERVICES = {
    "recserve-gateway": "recserve.v1.RecommenderService",
    "recserve-embedding-store": "recserve.v1.EmbeddingStoreService",
    "recserve-candidates": "recserve.v1.CandidateService",
    "recserve-ranking": "recserve.v1.RankingService",
}
STAGES = {
    "embedding_store": ("recserve-embedding-store", "recserve.v1.EmbeddingStoreService/GetUserStates"),
    "candidates": ("recserve-candidates", "recserve.v1.CandidateService/SearchCandidates"),
    "ranking": ("recserve-ranking", "recserve.v1.RankingService/RankCandidates"),
}  # fmt: skip


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    with serve_receiver() as served:
        yield served


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, bundles: Path, receiver: tuple[Receiver, int]
) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("traced"), bundles, **otel_env(receiver[1]))
    yield stack
    stack.down()


def recommend(
    channel: grpc.Channel, user_id: str, trace_id: str, parent_id: str
) -> recommender_pb2.RecommendResponse:
    """One Recommend as a traced caller would send it (W3C traceparent, sampled)."""
    return recommender_pb2_grpc.RecommenderServiceStub(channel).Recommend(
        recommender_pb2.RecommendRequest(user_id=user_id, k=5),
        metadata=[("traceparent", f"00-{trace_id}-{parent_id}-01")],
        timeout=5,
    )


def one(spans: list[ReceivedSpan], **match: object) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def test_one_recommend_is_one_trace_across_the_four_services(
    traced: Stack, receiver: tuple[Receiver, int]
) -> None:
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    with grpc.insecure_channel(traced.address("gateway")) as channel:
        reply = recommend(channel, known_users(traced, 1)[0], trace_id, caller)
    assert not reply.degraded, reply.degraded_detail
    # Gateway server span, three stage spans, three client spans, three backend server spans.
    spans = receiver[0].wait_for(lambda ss: len([s for s in ss if s.trace_id == trace_id]) >= 10)
    spans = [s for s in spans if s.trace_id == trace_id]
    assert {s.service for s in spans} == set(SERVICES)

    gateway = one(spans, kind=SERVER, service="recserve-gateway")
    assert gateway.parent_id == caller
    assert gateway.name == "recserve.v1.RecommenderService/Recommend"
    assert gateway.attributes["rpc.system"] == "grpc"
    assert gateway.attributes["rpc.service"] == "recserve.v1.RecommenderService"
    assert gateway.attributes["rpc.method"] == "Recommend"
    assert gateway.attributes["rpc.grpc.status_code"] == 0
    version = gateway.attributes["recserve.model_version"]
    assert version
    assert "recserve.degraded_reason" not in gateway.attributes

    for stage, (service, rpc) in STAGES.items():
        waited = one(spans, kind=INTERNAL, name=stage)
        assert waited.parent_id == gateway.span_id
        assert waited.attributes["recserve.batch.size"] == 1
        # A batch of one hangs under its only request, so the trace stays connected.
        call = one(spans, kind=CLIENT, name=rpc)
        assert call.service == "recserve-gateway"
        assert call.parent_id == waited.span_id
        assert call.attributes["recserve.batch.size"] == 1
        assert call.attributes["rpc.grpc.status_code"] == 0
        assert call.links == ()
        served = one(spans, kind=SERVER, service=service)
        assert served.name == rpc
        assert served.parent_id == call.span_id
        assert served.attributes["rpc.service"] == SERVICES[service]
        assert served.attributes["rpc.grpc.status_code"] == 0
        assert served.attributes["recserve.model_version"] == version


def test_a_burst_is_served_by_batch_spans_linking_every_request(
    traced: Stack, receiver: tuple[Receiver, int]
) -> None:
    requests = {secrets.token_hex(16): secrets.token_hex(8) for _ in range(48)}
    # Some may come back degraded on a busy machine: their traces are complete all the same.
    with (
        grpc.insecure_channel(traced.address("gateway")) as channel,
        futures.ThreadPoolExecutor(max_workers=48) as pool,
    ):
        list(
            pool.map(
                lambda args: recommend(channel, *args),
                zip(known_users(traced, 48), requests, requests.values(), strict=True),
            )
        )
    ours = set(requests)

    def batches(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s
            for s in spans
            if s.kind == CLIENT
            and s.attributes.get("recserve.batch.size", 0) > 1
            and {t for t, _ in s.links} & ours
        ]

    def complete(spans: list[ReceivedSpan]) -> bool:
        """Some batch spans, and every span they link to or serve, are in."""
        ids = {s.span_id for s in spans}
        parents = {s.parent_id for s in spans}
        found = batches(spans)
        return bool(found) and all(
            b.span_id in parents and all(span_id in ids for _, span_id in b.links) for b in found
        )

    spans = receiver[0].wait_for(complete)
    by_id = {s.span_id: s for s in spans}
    for batch in batches(spans):
        linked = {t for t, _ in batch.links}
        assert len(batch.links) == batch.attributes["recserve.batch.size"]
        assert len(linked) == len(batch.links) > 1
        # A root of its own trace, not a child of whichever request triggered it.
        assert batch.parent_id == ""
        assert batch.trace_id not in ours
        for trace_id, span_id in batch.links:
            member = by_id[span_id]
            assert member.trace_id == trace_id
            assert member.kind == INTERNAL
            assert (batch.trace_id, batch.span_id) in member.links
        # The backend's server span continues the batch's trace.
        served = [s for s in spans if s.parent_id == batch.span_id]
        assert [s.kind for s in served] == [SERVER]
        assert served[0].trace_id == batch.trace_id


def test_with_tracing_off_nothing_is_exported(
    tmp_path_factory: pytest.TempPathFactory, bundles: Path
) -> None:
    with serve_receiver() as (receiver, port):
        env = otel_env(port)
        del env["OTEL_TRACES_EXPORTER"]  # unset: off, although an endpoint is configured
        stack = start_stack(tmp_path_factory.mktemp("untraced"), bundles, **env)
        try:
            with grpc.insecure_channel(stack.address("gateway")) as channel:
                for user_id in known_users(stack, 5):
                    recommend(channel, user_id, secrets.token_hex(16), secrets.token_hex(8))
        finally:
            stack.down()  # a provider would flush here
        assert receiver.exports == 0


def test_spans_queued_at_shutdown_are_flushed(
    tmp_path_factory: pytest.TempPathFactory, bundles: Path
) -> None:
    with serve_receiver() as (receiver, port):
        # A schedule delay far past the test: only the shutdown flush can export the spans.
        env = otel_env(port, OTEL_BSP_SCHEDULE_DELAY="600000")
        stack = start_stack(tmp_path_factory.mktemp("flushed"), bundles, **env)
        trace_id = secrets.token_hex(16)
        try:
            with grpc.insecure_channel(stack.address("gateway")) as channel:
                recommend(channel, known_users(stack, 1)[0], trace_id, secrets.token_hex(8))
            assert not [s for s in receiver.spans() if s.trace_id == trace_id]
        finally:
            stack.down()
        services = {s.service for s in receiver.spans() if s.trace_id == trace_id}
        assert services == set(SERVICES)
