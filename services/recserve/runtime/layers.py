"""The layers every unary RPC passes through, composed once per method by `Service`.

A layer is `async (call, next) -> response`: it may act before and after `next(call)`, or answer
without calling it. `compose` stacks them around an endpoint, outermost first. The server's
stack is metrics → tracing (when on) → error mapping → load shedding → auth →
decode-and-handle.

Handlers receive raw bytes and `decoding_endpoint` decodes them: stock grpcio answers an
undecodable body with UNKNOWN/INTERNAL, and we owe callers INVALID_ARGUMENT with a reason.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import redis
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.trace import SpanKind, Tracer

from recserve.runtime import errors, tracing
from recserve.runtime.metrics import RPC_DURATION, RPC_IN_FLIGHT, RPC_TOTAL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RpcContext:
    """What a domain handler may know about its call, without gRPC types."""

    # Seconds left before the caller's deadline, or None without a deadline.
    time_remaining: float | None


Handler = Callable[[Any, RpcContext], Awaitable[Message]]


@dataclass
class Call:
    """One RPC on its way through the layers."""

    body: bytes
    context: grpc.aio.ServicerContext
    # The status the call ends with; the error-mapping layer sets it for the metrics layer.
    code: grpc.StatusCode = grpc.StatusCode.OK


Endpoint = Callable[[Call], Awaitable[Message]]
Layer = Callable[[Call, Endpoint], Awaitable[Message]]


def compose(layers: Sequence[Layer], endpoint: Endpoint) -> Endpoint:
    """One endpoint running `layers` (outermost first) around `endpoint`."""
    for layer in reversed(layers):
        endpoint = _bind(layer, endpoint)
    return endpoint


def _bind(layer: Layer, next_: Endpoint) -> Endpoint:
    async def bound(call: Call) -> Message:
        return await layer(call, next_)

    return bound


def metrics_layer(service: str, method: str) -> Layer:
    """Counts calls in flight, and latency and calls by the status they end with."""
    in_flight = RPC_IN_FLIGHT.labels(service, method)

    async def metrics(call: Call, next_: Endpoint) -> Message:
        started = time.perf_counter()
        in_flight.inc()
        try:
            return await next_(call)
        finally:
            in_flight.dec()
            code = call.code.name
            RPC_DURATION.labels(service, method, code).observe(time.perf_counter() - started)
            RPC_TOTAL.labels(service, method, code).inc()

    return metrics


def tracing_layer(service: str, method: str, tracer: Tracer) -> Layer:
    """Runs the call in a server span continuing the caller's trace (context extracted from the
    invocation metadata), with the rpc.* attributes, the status it ends with, and the response's
    model version and degraded reason where it has them."""
    name = f"{service}/{method}"
    attributes = tracing.rpc_attributes(service, method)

    async def traced(call: Call, next_: Endpoint) -> Message:
        parent = tracing.extract(call.context.invocation_metadata())
        # The error layer below turns exceptions into statuses; the span records that status.
        with tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await next_(call)
            finally:
                tracing.set_rpc_status(span, call.code, server=True)
            tracing.describe_response(span, response)
            return response

    return traced


_STATUS_BY_ERROR: tuple[tuple[type[errors.ServiceError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)


def status_for(error: errors.ServiceError) -> grpc.StatusCode:
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.UNKNOWN


def bad_request_status(error: errors.InvalidArgument, field: str) -> grpc.Status:
    """INVALID_ARGUMENT with the error's message as details and a `google.rpc.BadRequest`
    naming `field` in the status details (trailer grpc-status-details-bin)."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=str(error))
            ]
        )
    )
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(error), details=[detail])
    return rpc_status.to_status(status)


def error_layer(method: str) -> Layer:
    """Ends the call with a status for whatever the layers below raise, and records it."""

    async def map_errors(call: Call, next_: Endpoint) -> Message:
        try:
            return await next_(call)
        except errors.ServiceError as exc:
            call.code = status_for(exc)
            details = str(exc)
            if isinstance(exc, errors.InvalidArgument) and exc.field is not None:
                # The same message, plus the field in a form clients can act on.
                return await call.context.abort_with_status(bad_request_status(exc, exc.field))
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # A dependency outage, not a bug: retryable, and no traceback per request (the
            # model watchers log the outage once). The address stays private.
            call.code = grpc.StatusCode.UNAVAILABLE
            details = f"Redis unavailable ({type(exc).__name__}); retry"
        except Exception:
            call.code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", method)
            details = "internal error"
        return await call.context.abort(call.code, details)  # raises to end the RPC

    return map_errors


class LoadShedder:
    """Answers RESOURCE_EXHAUSTED at once beyond `limit` calls in flight (counted across every
    method it guards) instead of queueing work that would only finish after its deadline."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, call: Call, next_: Endpoint) -> Message:
        self.in_flight += 1
        try:
            if self.in_flight > self.limit:
                raise errors.ResourceExhausted(
                    f"server overloaded: more than {self.limit} requests in flight"
                )
            return await next_(call)
        finally:
            self.in_flight -= 1


def auth_layer(*tokens: str) -> Layer:
    """Refuses calls without `authorization: Bearer <t>` for one of `tokens` (constant-time
    comparison; no tokens: every call is refused)."""
    expected = [t.encode() for t in tokens]

    async def check_auth(call: Call, next_: Endpoint) -> Message:
        header = next(
            (v for k, v in call.context.invocation_metadata() or () if k == "authorization"), ""
        )
        if not isinstance(header, str):
            header = ""
        scheme, _, given = header.partition(" ")
        # Every token is compared, so the time taken does not tell which one nearly matched.
        matches = [hmac.compare_digest(given.encode(), t) for t in expected]
        if scheme.lower() != "bearer" or not any(matches):
            raise errors.Unauthenticated("missing or invalid bearer token")
        return await next_(call)

    return check_auth


def decoding_endpoint(request_type: type[Message], handler: Handler) -> Endpoint:
    """Decodes the body as `request_type` (INVALID_ARGUMENT when it is not one) and runs
    `handler` on it."""
    name = request_type.DESCRIPTOR.full_name

    async def decode_and_handle(call: Call) -> Message:
        request = request_type()
        try:
            request.ParseFromString(call.body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise errors.InvalidArgument(f"request body is not a valid {name}: {exc}") from None
        return await handler(request, RpcContext(call.context.time_remaining()))

    return decode_and_handle
