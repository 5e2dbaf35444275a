"""OpenTelemetry tracing, configured only by the standard OTEL_* variables (docs/contracts.md).

`configure` installs an SDK tracer provider when OTEL_TRACES_EXPORTER names an exporter
(otlp, console; a comma-separated list is allowed). Unset or `none` leaves tracing off, unlike
the SDK's own default (otlp): then `tracer()` is None, the server skips its tracing layer and
the gateway sends no trace context, so an untraced deployment pays nothing. The SDK and the
OTLP exporter read the rest themselves: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER / _ARG, OTEL_BSP_*, OTEL_EXPORTER_OTLP_* and OTEL_PROPAGATORS.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from recserve.runtime.config import ConfigError

ResponseT = TypeVar("ResponseT", bound=Message)

INSTRUMENTATION = "recserve"
EXPORTERS = ("otlp", "console", "none")

# Span attributes beyond the rpc.* semantic conventions.
MODEL_VERSION = "recserve.model_version"
DEGRADED_REASON = "recserve.degraded_reason"
BATCH_SIZE = "recserve.batch.size"
STAGE = "recserve.stage"

# Server-side codes that mark a span as failed (OpenTelemetry gRPC semantic conventions); on
# the client every code but OK does.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class SampleLinkedRoots(Sampler):
    """Samples a root span that links to a sampled span; `delegate` decides every other span.

    A gateway batch call serving several requests is a root span linking to each of them, and a
    ratio sampler would keep it independently of them: at 1 % a sampled request would almost
    never find its batch call. Keeping the batch whenever one of its requests is kept makes
    every exported request trace complete.
    """

    def __init__(self, delegate: Sampler):
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and any(link.context.trace_flags.sampled for link in links or ()):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"SampleLinkedRoots{{{self._delegate.get_description()}}}"


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when used: it pulls in the OTLP protobufs.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def exporter_names() -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names ([] = tracing off); ConfigError for others."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={raw!r}: not one of {', '.join(EXPORTERS)}")
    return [n for n in names if n != "none"]


def build_provider(default_service_name: str, exporters: Sequence[str]) -> TracerProvider:
    """A provider exporting through one batch processor per exporter name, for the service
    OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) names, else `default_service_name`."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    provider = TracerProvider(resource=resource)
    # The provider read OTEL_TRACES_SAMPLER(_ARG); wrapped before any tracer copies it.
    provider.sampler = SampleLinkedRoots(provider.sampler)
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def configure(default_service_name: str, exporters: Sequence[str]) -> TracerProvider | None:
    """Installs the global tracer provider exporting to `exporters` (from `exporter_names`) and
    returns it (shut it down on exit to flush); None with tracing off (no exporter)."""
    if not exporters:
        return None
    provider = build_provider(default_service_name, exporters)
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer | None:
    """A tracer of the provider `configure` installed, or None when tracing is off."""
    provider = trace.get_tracer_provider()
    return provider.get_tracer(INSTRUMENTATION) if isinstance(provider, TracerProvider) else None


def rpc_attributes(service: str, method: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def extract(metadata: Sequence[tuple[str, str | bytes]] | None) -> Context:
    """The caller's trace context from gRPC invocation metadata (W3C traceparent by default)."""
    return propagate.extract({k: v for k, v in metadata or () if isinstance(v, str)})


def outgoing_metadata() -> list[tuple[str, str]] | None:
    """gRPC metadata carrying the current trace context; None outside a span (tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def set_rpc_status(span: Span, code: grpc.StatusCode, *, server: bool) -> None:
    """Records the call's gRPC status on its span, failed as the semantic conventions say."""
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS if server else code != grpc.StatusCode.OK:
        span.set_status(StatusCode.ERROR, code.name)


def describe_response(span: Span, response: Message) -> None:
    """Puts the response's model version and degraded reason (fields of the recserve.v1
    responses that have them) on its server span."""
    fields = response.DESCRIPTOR.fields_by_name
    version = fields.get("model_version")
    if version is not None:
        span.set_attribute(MODEL_VERSION, getattr(response, version.name))
    reason = fields.get("degraded_reason")
    if reason is not None:
        number = getattr(response, reason.name)
        if number and reason.enum_type is not None:
            span.set_attribute(DEGRADED_REASON, reason.enum_type.values_by_number[number].name)


def client_span(
    tracer: trace.Tracer | None, service: str, method: str
) -> AbstractContextManager[object]:
    """The current span for one unbatched downstream call (nothing with tracing off)."""
    if tracer is None:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(
        f"{service}/{method}", kind=SpanKind.CLIENT, attributes=rpc_attributes(service, method)
    )


async def call(
    method: Callable[..., Awaitable[ResponseT]], request: Message, *, timeout: float
) -> ResponseT:
    """`method(request)` carrying the current trace context, its status and the response's model
    version recorded on the current (client) span."""
    span = trace.get_current_span()
    try:
        response = await method(request, timeout=timeout, metadata=outgoing_metadata())
    except grpc.aio.AioRpcError as exc:
        if span.is_recording():
            set_rpc_status(span, exc.code(), server=False)
        raise
    if span.is_recording():
        set_rpc_status(span, grpc.StatusCode.OK, server=False)
        describe_response(span, response)
    return response
