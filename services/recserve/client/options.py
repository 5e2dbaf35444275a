"""Channel settings shared by the sync and asyncio clients: target, TLS, token, timeouts, and
the recommended service config (round_robin, client health checking, bounded retries).

Point the client at every replica at once: ``dns:///<headless service>:<port>`` (a Kubernetes
headless Service returns one A record per ready pod; gRPC connects to each, round_robin spreads
calls over them and the health check takes a draining pod out of rotation before it stops).
A target without a scheme is resolved through DNS too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from recserve.v1 import recommender_pb2

TARGET_ENV = "RECSERVE_TARGET"

SERVICE = recommender_pb2.DESCRIPTOR.services_by_name["RecommenderService"].full_name
# Idempotent reads only: RecordEvents is not retried (a retry could store the events twice).
RETRYABLE_METHODS: tuple[tuple[str, str], ...] = (
    (SERVICE, "Recommend"),
    (SERVICE, "GetSimilarItems"),
)
# The health service name the servers report readiness under (recserve.runtime.server).
HEALTH_SERVICE_NAME = "readiness"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def resolve_target(target: str | None) -> str:
    """`target`, else $RECSERVE_TARGET."""
    resolved = target or os.environ.get(TARGET_ENV)
    if not resolved:
        raise ValueError(f"no target: pass one or set {TARGET_ENV} (e.g. dns:///gateway:50051)")
    return resolved


def service_config(
    retryable: Iterable[tuple[str, str]] = RETRYABLE_METHODS,
    *,
    max_attempts: int = 3,
    initial_backoff_s: float = 0.01,
    max_backoff_s: float = 0.1,
) -> dict[str, Any]:
    """round_robin over every resolved address, client health checking on `readiness`, and for
    the (service, method) pairs in `retryable` up to `max_attempts` tries on UNAVAILABLE within a
    retry budget. No timeouts: a `methodConfig.timeout` below ~1.5 s fails every call at once
    (a grpc bug), so deadlines are set per call."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": HEALTH_SERVICE_NAME},
    }
    names = [{"service": service, "method": method} for service, method in retryable]
    if names:
        if not 2 <= max_attempts <= 5:
            raise ValueError(f"max_attempts={max_attempts}: gRPC allows 2 to 5")
        config["methodConfig"] = [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": f"{initial_backoff_s}s",
                    "maxBackoff": f"{max_backoff_s}s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
        # Retry budget: a failure costs a token, a success earns 0.1; retries stop while fewer
        # than half the tokens are left, so an outage is not multiplied by the retries.
        config["retryThrottling"] = {"maxTokens": 100, "tokenRatio": 0.1}
    return config


def channel_options(
    config: dict[str, Any] | None = None,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    extra: Sequence[tuple[str, Any]] = (),
) -> list[tuple[str, Any]]:
    """gRPC channel arguments: `config` (default `service_config()`), message size limits,
    keepalive, and a reconnect backoff capped at 1 s: gRPC's default grows to 120 s, so a replica
    restarted after a few seconds would get traffic back long after it is ready, and a rolling
    update could leave no ready replica. `extra` comes last, so it can override any of them."""
    return [
        ("grpc.service_config", json.dumps(service_config() if config is None else config)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        *extra,
    ]


@dataclass(frozen=True)
class ClientOptions:
    target: str
    token: str | None = None  # sent as `authorization: Bearer <token>`
    tls: bool = False  # TLS with the system roots; implied by any of the files below
    tls_ca_file: str | None = None  # CA that signed the server certificate
    tls_cert_file: str | None = None  # client certificate (mTLS), with tls_key_file
    tls_key_file: str | None = None
    timeout_s: float = 1.0  # per call, unless the call passes its own
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    channel_options: Sequence[tuple[str, Any]] = ()  # extra channel arguments

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s={self.timeout_s} must be > 0")

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for plaintext."""
        if not (self.tls or self.tls_ca_file or self.tls_cert_file):
            return None

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.tls_ca_file),
            private_key=read(self.tls_key_file),
            certificate_chain=read(self.tls_cert_file),
        )

    def channel_args(self) -> list[tuple[str, Any]]:
        return channel_options(max_message_bytes=self.max_message_bytes, extra=self.channel_options)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def timeout(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s
