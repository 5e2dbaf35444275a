"""aio gRPC server bootstrap shared by every service.

Handlers receive raw bytes and decode them here: stock grpcio answers an undecodable body with
UNKNOWN/INTERNAL, and we owe callers INVALID_ARGUMENT with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import redis
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recserve.runtime import errors
from recserve.runtime.config import ServerConfig
from recserve.runtime.metrics import RPC_DURATION, RPC_IN_FLIGHT, RPC_TOTAL, start_metrics_server

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)

_STATUS_BY_ERROR: tuple[tuple[type[errors.ServiceError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)

# Health service names probed by Kubernetes (see docs/contracts.md).
READINESS = "readiness"
LIVENESS = "liveness"


def status_for(error: errors.ServiceError) -> grpc.StatusCode:
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.UNKNOWN


@dataclass(frozen=True)
class RpcContext:
    """What a domain handler may know about its call, without gRPC types."""

    # Seconds left before the caller's deadline, or None without a deadline.
    time_remaining: float | None


Handler = Callable[[Any, RpcContext], Awaitable[Message]]


@dataclass(frozen=True)
class Method:
    name: str
    request_type: type[Message]
    handler: Handler


class Service:
    """One gRPC service: its descriptor, methods and optional bearer-token check."""

    def __init__(
        self,
        descriptor: ServiceDescriptor,
        methods: Sequence[Method],
        *,
        component: str,
        auth_token: str | None = None,
        max_in_flight: int = 0,
    ):
        self.descriptor = descriptor
        self.methods = methods
        self.component = component
        self._auth_token = auth_token.encode() if auth_token else None
        # 0 = unbounded. Beyond it, answer RESOURCE_EXHAUSTED at once instead of queueing
        # work that would only finish after its deadline.
        self._max_in_flight = max_in_flight
        self._in_flight = 0

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name

    def generic_handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            m.name: grpc.unary_unary_rpc_method_handler(
                self._wrap(m), request_deserializer=None, response_serializer=_serialize
            )
            for m in self.methods
        }
        return grpc.method_handlers_generic_handler(self.full_name, handlers)

    def _check_auth(self, context: grpc.aio.ServicerContext) -> None:
        if self._auth_token is None:
            return
        header = next(
            (v for k, v in context.invocation_metadata() or () if k == "authorization"), ""
        )
        if not isinstance(header, str):
            header = ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._auth_token):
            raise errors.Unauthenticated("missing or invalid bearer token")

    def _wrap(self, method: Method) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
        in_flight = RPC_IN_FLIGHT.labels(self.component, method.name)
        request_type = method.request_type
        handler = method.handler

        async def behavior(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            in_flight.inc()
            self._in_flight += 1
            try:
                if self._max_in_flight and self._in_flight > self._max_in_flight:
                    raise errors.ResourceExhausted(
                        f"server overloaded: more than {self._max_in_flight} requests in flight"
                    )
                self._check_auth(context)
                request = request_type()
                try:
                    request.ParseFromString(raw)
                except (DecodeError, RuntimeError, ValueError) as exc:
                    raise errors.InvalidArgument(
                        f"request body is not a valid {request_type.DESCRIPTOR.full_name}: {exc}"
                    ) from None
                return await handler(request, RpcContext(context.time_remaining()))
            except errors.ServiceError as exc:
                code = status_for(exc)
                await context.abort(code, str(exc))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # A dependency outage, not a bug: retryable, and no traceback per request (the
                # model watchers log the outage once per poll). The address stays private.
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, f"Redis unavailable ({type(exc).__name__}); retry")
            except Exception as exc:
                # abort() raises to end the RPC; it reaches here only as a real bug.
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", method.name)
                await context.abort(code, "internal error")
            finally:
                self._in_flight -= 1
                in_flight.dec()
                elapsed = time.perf_counter() - started
                RPC_DURATION.labels(self.component, method.name, code.name).observe(elapsed)
                RPC_TOTAL.labels(self.component, method.name, code.name).inc()

        return behavior


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def server_options(config: ServerConfig) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
        # Clients re-resolve and reconnect, so pods added by the HPA receive traffic.
        ("grpc.max_connection_age_ms", config.max_connection_age_ms),
        ("grpc.max_connection_age_grace_ms", int(config.shutdown_grace_s * 1000)),
        ("grpc.so_reuseport", 0),
    ]


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if config.tls is None:
        return None
    with open(config.tls.key_file, "rb") as f:
        key = f.read()
    with open(config.tls.cert_file, "rb") as f:
        cert = f.read()
    ca = None
    if config.tls.ca_file:
        with open(config.tls.ca_file, "rb") as f:
            ca = f.read()
    return grpc.ssl_server_credentials([(key, cert)], ca, require_client_auth=ca is not None)


class ServiceRunner:
    """Lifecycle: serve (NOT_SERVING) → ready() → SIGTERM → NOT_SERVING → drain → stop."""

    def __init__(self, config: ServerConfig, services: Sequence[Service]):
        self.config = config
        self.services = services
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(options=server_options(config))
        self.bound_port = 0
        self.metrics_port = 0
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        for service in self.services:
            self.server.add_generic_rpc_handlers((service.generic_handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [s.full_name for s in self.services]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        address = f"{self.config.host}:{self.config.grpc_port}"
        credentials = _credentials(self.config)
        if credentials is None:
            self.bound_port = self.server.add_insecure_port(address)
        else:
            self.bound_port = self.server.add_secure_port(address, credentials)
        for name in ["", READINESS, *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.server.start()
        # Same interface as gRPC: a loopback-only service does not expose metrics elsewhere.
        self.metrics_port = start_metrics_server(self.config.metrics_port, self.config.host)
        log.info(
            "listening",
            extra={"grpc_port": self.bound_port, "metrics_port": self.metrics_port},
        )

    async def set_ready(self, ready: bool) -> None:
        if self._stopping.is_set():
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", READINESS, *(s.full_name for s in self.services)]:
            await self.health.set(name, status)

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_for_stop(self) -> None:
        await self._stopping.wait()
        log.info(
            "shutting down",
            extra={
                "delay_s": self.config.shutdown_delay_s,
                "grace_s": self.config.shutdown_grace_s,
            },
        )
        await self.health.enter_graceful_shutdown()
        # Clients that health-check this server stop picking it once they see NOT_SERVING, but
        # calls they picked a moment before are still on their way: gRPC cancels calls that
        # arrive after stop() (CANCELLED, which no client retries). Keep serving meanwhile.
        await asyncio.sleep(self.config.shutdown_delay_s)
        await self.server.stop(self.config.shutdown_grace_s)
        log.info("stopped")


async def serve(
    config: ServerConfig,
    services: Sequence[Service],
    *,
    on_start: Callable[[ServiceRunner], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Runs until SIGTERM/SIGINT. `on_start` loads the model and calls runner.set_ready(True)."""
    runner = ServiceRunner(config, services)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
    await runner.start()
    startup = asyncio.ensure_future(on_start(runner)) if on_start else None
    try:
        await runner.wait_for_stop()
    finally:
        if startup is not None and not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
        if on_stop is not None:
            await on_stop()
