"""Span structure from the batcher and the server's tracing layer, the sampler, the OTEL_*
configuration and log correlation, against the real SDK with an in-memory exporter."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from recserve.devstack import Stack
from recserve.gateway.batcher import AdaptiveBatcher
from recserve.runtime import tracing
from recserve.runtime.bootstrap import service_name
from recserve.runtime.config import ConfigError
from recserve.runtime.errors import InvalidArgument
from recserve.runtime.layers import Call, compose, error_layer, tracing_layer
from recserve.runtime.logging import JsonFormatter
from recserve.v1 import recommender_pb2 as pb
from recserve.v1 import types_pb2
from tests.serving.test_runtime_layers import Aborted, make_call


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


class GatedBackend:
    """Answers each batch once released, so a test decides what queues behind a call."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.current: list[trace.Span] = []

    async def send(self, key: str, queries: list[int], timeout: float) -> list[int]:
        self.current.append(trace.get_current_span())
        await self.release.wait()
        return [q * 10 for q in queries]


def batcher(backend: GatedBackend, tracer: trace.Tracer) -> AdaptiveBatcher[str, int, int]:
    return AdaptiveBatcher(
        backend.send,
        stage="ranking",
        max_batch=8,
        max_in_flight=1,
        max_queued=64,
        tracer=tracer,
        span_name="recserve.v1.RankingService/RankCandidates",
        span_attributes=tracing.rpc_attributes("recserve.v1.RankingService", "RankCandidates"),
    )


async def request(b: AdaptiveBatcher[str, int, int], tracer: trace.Tracer, query: int) -> int:
    with tracer.start_as_current_span(f"request {query}"):
        return await b.submit("v1", query, asyncio.get_running_loop().time() + 5)


async def test_a_lone_query_is_one_connected_trace(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    backend = GatedBackend()
    backend.release.set()
    assert await request(batcher(backend, tracer), tracer, 1) == 10
    [req] = named(exporter, "request 1")
    [member] = named(exporter, "ranking")
    [call] = named(exporter, "recserve.v1.RankingService/RankCandidates")
    assert member.parent is not None and member.parent.span_id == req.context.span_id
    assert call.parent is not None and call.parent.span_id == member.context.span_id
    assert call.kind == SpanKind.CLIENT
    assert call.attributes is not None and call.attributes["recserve.batch.size"] == 1
    assert call.attributes["rpc.method"] == "RankCandidates"
    # The send function ran inside the batch span.
    assert backend.current[0].get_span_context() == call.context


async def test_a_batch_is_a_root_span_linked_both_ways_with_every_request(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    backend = GatedBackend()
    b = batcher(backend, tracer)
    # The first query holds the only in-flight slot; the next three queue and go as one batch.
    first = asyncio.create_task(request(b, tracer, 0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(request(b, tracer, q)) for q in (1, 2, 3)]
    await asyncio.sleep(0.01)
    backend.release.set()
    assert [await t for t in (first, *rest)] == [0, 10, 20, 30]

    calls = named(exporter, "recserve.v1.RankingService/RankCandidates")
    [batch] = [c for c in calls if c.attributes and c.attributes["recserve.batch.size"] == 3]
    assert batch.parent is None
    members = {s.context.span_id: s for s in named(exporter, "ranking")}
    linked = [members[link.context.span_id] for link in batch.links]
    assert len(linked) == 3
    requests = {named(exporter, f"request {q}")[0].context.span_id for q in (1, 2, 3)}
    assert {m.parent.span_id for m in linked if m.parent} == requests
    for member in linked:
        assert member.context.trace_id != batch.context.trace_id
        assert [link.context.span_id for link in member.links] == [batch.context.span_id]
    # Dispatched from the first query's completion, yet not under its trace.
    assert backend.current[1].get_span_context() == batch.context


async def test_a_query_past_its_deadline_ends_its_span_failed(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    backend = GatedBackend()
    b = batcher(backend, tracer)
    with pytest.raises(Exception, match="deadline"):
        await b.submit("v1", 1, asyncio.get_running_loop().time() + 0.01)
    [member] = named(exporter, "ranking")
    assert member.status.status_code == trace.StatusCode.ERROR
    backend.release.set()


async def test_untraced_batcher_opens_no_span() -> None:
    backend = GatedBackend()
    backend.release.set()
    b: AdaptiveBatcher[str, int, int] = AdaptiveBatcher(
        backend.send, stage="ranking", max_batch=8, max_in_flight=1, max_queued=8
    )
    assert await b.submit("v1", 2, asyncio.get_running_loop().time() + 5) == 20
    assert not backend.current[0].get_span_context().is_valid


def traced_endpoint(tracer: trace.Tracer, reply: pb.RecommendResponse | Exception):
    async def endpoint(call: Call) -> pb.RecommendResponse:
        if isinstance(reply, Exception):
            raise reply
        return reply

    return compose(
        [
            tracing_layer("recserve.v1.RecommenderService", "Recommend", tracer),
            error_layer("Recommend"),
        ],
        endpoint,
    )


PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_server_span_continues_the_callers_trace(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    reply = pb.RecommendResponse(
        model_version="v7",
        degraded=True,
        degraded_reason=types_pb2.DEGRADED_REASON_RANKING_UNAVAILABLE,
    )
    await traced_endpoint(tracer, reply)(make_call(metadata=[("traceparent", PARENT)]))
    [span] = exporter.get_finished_spans()
    assert span.name == "recserve.v1.RecommenderService/Recommend"
    assert span.kind == SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "recserve.v1.RecommenderService",
        "rpc.method": "Recommend",
        "rpc.grpc.status_code": 0,
        "recserve.model_version": "v7",
        "recserve.degraded_reason": "DEGRADED_REASON_RANKING_UNAVAILABLE",
    }
    assert span.status.status_code == trace.StatusCode.UNSET


@pytest.mark.parametrize(
    ("error", "code", "failed"),
    [
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL, True),
        # The caller's mistake, not a server failure.
        (InvalidArgument("k=0"), grpc.StatusCode.INVALID_ARGUMENT, False),
    ],
)
async def test_server_span_records_the_status_the_call_ends_with(
    tracer: trace.Tracer,
    exporter: InMemorySpanExporter,
    error: Exception,
    code: grpc.StatusCode,
    failed: bool,
) -> None:
    with pytest.raises(Aborted):
        await traced_endpoint(tracer, error)(make_call())
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert (span.status.status_code == trace.StatusCode.ERROR) is failed


def context(sampled: bool) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(0x1, 0x2, is_remote=False, trace_flags=flags)


def test_root_linking_a_sampled_span_is_sampled_whatever_the_ratio() -> None:
    sampler = tracing.SampleLinkedRoots(TraceIdRatioBased(0.0))
    trace_id = 0xFFFF_FFFF_FFFF_FFFF_FFFF_FFFF_FFFF_FFFF
    kept = sampler.should_sample(
        None, trace_id, "b", links=[Link(context(False)), Link(context(True))]
    )
    assert kept.decision == Decision.RECORD_AND_SAMPLE
    dropped = sampler.should_sample(None, trace_id, "b", links=[Link(context(False))])
    assert dropped.decision == Decision.DROP
    # A child follows the delegate, links or not.
    parent = trace.set_span_in_context(NonRecordingSpan(context(False)))
    child = tracing.SampleLinkedRoots(ALWAYS_OFF).should_sample(
        parent, trace_id, "c", links=[Link(context(True))]
    )
    assert child.decision == Decision.DROP


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (None, []),
        ("", []),
        ("none", []),
        ("otlp", ["otlp"]),
        ("console, otlp", ["console", "otlp"]),
    ],
)
def test_exporter_names(
    monkeypatch: pytest.MonkeyPatch, value: str | None, names: list[str]
) -> None:
    if value is None:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert tracing.exporter_names() == names


def test_unknown_exporter_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        tracing.exporter_names()


def test_tracing_off_installs_nothing() -> None:
    assert tracing.configure("recserve-gateway", []) is None
    assert tracing.tracer() is None
    assert tracing.outgoing_metadata() is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "recserve-embedding-store"),
        ({"OTEL_SERVICE_NAME": "store-canary"}, "store-canary"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"}, "from-attrs"),
    ],
)
def test_service_name(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    provider = tracing.build_provider(service_name("embedding_store"), [])
    assert provider.resource.attributes[SERVICE_NAME] == expected


def test_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
    sampler = tracing.build_provider("x", []).sampler
    assert sampler.get_description() == (
        "SampleLinkedRoots{ParentBased{root:TraceIdRatioBased{0.01},remoteParentSampled:"
        "AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:"
        "AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}}"
    )


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("gateway"))
    log = logging.getLogger("recserve.runtime.layers")
    log.addHandler(handler)
    yield out
    log.removeHandler(handler)


async def test_log_lines_inside_a_request_carry_its_trace(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, json_log: io.StringIO
) -> None:
    # The error layer logs an unexpected exception from inside the request's server span.
    with pytest.raises(Aborted):
        await traced_endpoint(tracer, RuntimeError("bug"))(
            make_call(metadata=[("traceparent", PARENT)])
        )
    logging.getLogger("recserve.runtime.layers").warning("outside any request")
    inside, outside = (json.loads(line) for line in json_log.getvalue().splitlines())
    [span] = exporter.get_finished_spans()
    assert inside["msg"] == "unhandled error in Recommend"
    assert inside["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert inside["span_id"] == f"{span.context.span_id:016x}"
    assert inside["trace_sampled"] is True
    assert "trace_id" not in outside


def test_devstack_passes_otel_variables_but_lets_each_service_name_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "one-for-all")
    stack = Stack(tmp_path, tmp_path)
    env = stack.service_env("ranking")
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert "OTEL_SERVICE_NAME" not in env
    assert stack.service_env("ranking", {"OTEL_SERVICE_NAME": "x"})["OTEL_SERVICE_NAME"] == "x"
