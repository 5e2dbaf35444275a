"""aio gRPC server bootstrap shared by every service; the per-call layers are in `layers`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recserve.runtime import tracing
from recserve.runtime.config import ServerConfig
from recserve.runtime.layers import (
    Call,
    Endpoint,
    Handler,
    Layer,
    LoadShedder,
    RpcContext,
    auth_layer,
    compose,
    decoding_endpoint,
    error_layer,
    metrics_layer,
    tracing_layer,
)
from recserve.runtime.metrics import start_metrics_server

# RpcContext is re-exported: domain handlers see it and nothing else of the layers.
__all__ = ["LIVENESS", "READINESS", "Method", "RpcContext", "Service", "ServiceRunner", "serve"]

log = logging.getLogger(__name__)

# Health service names probed by Kubernetes (see docs/contracts.md).
READINESS = "readiness"
LIVENESS = "liveness"


@dataclass(frozen=True)
class Method:
    name: str
    request_type: type[Message]
    handler: Handler
    # None: the service's token applies. Otherwise the bearer tokens this method accepts
    # (empty: it refuses every call).
    auth_tokens: tuple[str, ...] | None = None


Behavior = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Message]]


class Service:
    """One gRPC service: its descriptor, methods and optional bearer-token check.

    Raises ValueError when a method is not a unary method of the descriptor, its request type
    is not the descriptor's input type, or it is listed twice: a wiring mistake fails at start,
    not per call.
    """

    def __init__(
        self,
        descriptor: ServiceDescriptor,
        methods: Sequence[Method],
        *,
        auth_token: str | None = None,
        max_in_flight: int = 0,
    ):
        _check_methods(descriptor, methods)
        self.descriptor = descriptor
        self.methods = methods
        # 0 = unbounded; one limit shared by all methods of the service.
        shared: list[Layer] = []
        if max_in_flight:
            shared.append(LoadShedder(max_in_flight))
        # Tracing off: no layer at all, so untraced calls pay nothing for it.
        tracer = tracing.tracer()
        self._behaviors = {
            m.name: _behavior(
                compose(
                    [
                        metrics_layer(self.full_name, m.name),
                        *([tracing_layer(self.full_name, m.name, tracer)] if tracer else []),
                        error_layer(m.name),
                        *shared,
                        *_auth(m, auth_token),
                    ],
                    decoding_endpoint(m.request_type, m.handler),
                )
            )
            for m in methods
        }

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name

    def generic_handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                behavior, request_deserializer=None, response_serializer=_serialize
            )
            for name, behavior in self._behaviors.items()
        }
        return grpc.method_handlers_generic_handler(self.full_name, handlers)


def _check_methods(descriptor: ServiceDescriptor, methods: Sequence[Method]) -> None:
    seen: set[str] = set()
    for method in methods:
        proto = descriptor.methods_by_name.get(method.name)
        if proto is None:
            raise ValueError(f"{descriptor.full_name} has no method {method.name!r}")
        if proto.client_streaming or proto.server_streaming:
            raise ValueError(f"{proto.full_name} is streaming; only unary methods are served")
        given = method.request_type.DESCRIPTOR.full_name
        if given != proto.input_type.full_name:
            raise ValueError(f"{proto.full_name} takes {proto.input_type.full_name}, not {given}")
        if method.name in seen:
            raise ValueError(f"{proto.full_name} is listed twice")
        seen.add(method.name)


def _auth(method: Method, service_token: str | None) -> list[Layer]:
    if method.auth_tokens is not None:
        return [auth_layer(*method.auth_tokens)]
    return [auth_layer(service_token)] if service_token else []


def _behavior(endpoint: Endpoint) -> Behavior:
    async def behavior(body: bytes, context: grpc.aio.ServicerContext) -> Message:
        return await endpoint(Call(body, context))

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
