"""Typed configuration from environment variables, validated at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


class Env:
    """Reads `RECSERVE_*` variables with type checks and bounds."""

    def __init__(self, environ: Mapping[str, str] | None = None, prefix: str = "RECSERVE_"):
        self._environ = os.environ if environ is None else environ
        self._prefix = prefix

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(self._prefix + name)
        return None if value is None or value.strip() == "" else value.strip()

    def string(self, name: str, default: str) -> str:
        value = self._raw(name)
        return default if value is None else value

    def optional_string(self, name: str) -> str | None:
        return self._raw(name)

    def integer(
        self, name: str, default: int, *, min_value: int = 0, max_value: int = 2**31
    ) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{self._prefix}{name}={raw!r} is not an integer") from None
        if not min_value <= value <= max_value:
            raise ConfigError(
                f"{self._prefix}{name}={value} is out of range [{min_value}, {max_value}]"
            )
        return value

    def number(
        self, name: str, default: float, *, min_value: float = 0.0, max_value: float = 1e9
    ) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{self._prefix}{name}={raw!r} is not a number") from None
        if not min_value <= value <= max_value:
            raise ConfigError(
                f"{self._prefix}{name}={value} is out of range [{min_value}, {max_value}]"
            )
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{self._prefix}{name}={raw!r} is not a boolean (true/false)")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise ConfigError(f"{self._prefix}{name}={value!r} must be one of {', '.join(choices)}")
        return value


@dataclass(frozen=True)
class TlsConfig:
    cert_file: str
    key_file: str
    # When set, peers must present a certificate signed by this CA (mTLS).
    ca_file: str | None


@dataclass(frozen=True)
class ServerConfig:
    """Settings every service shares."""

    host: str
    grpc_port: int
    metrics_port: int
    log_level: str
    log_format: str
    max_connection_age_ms: int
    shutdown_grace_s: float
    # After SIGTERM: NOT_SERVING, keep serving this long, then stop accepting and drain.
    shutdown_delay_s: float
    max_message_bytes: int
    max_concurrent_streams: int
    event_loop: str
    tls: TlsConfig | None

    @classmethod
    def from_env(cls, env: Env) -> ServerConfig:
        cert = env.optional_string("TLS_CERT_FILE")
        key = env.optional_string("TLS_KEY_FILE")
        if (cert is None) != (key is None):
            raise ConfigError(
                "RECSERVE_TLS_CERT_FILE and RECSERVE_TLS_KEY_FILE must be set together"
            )
        ca = env.optional_string("TLS_CA_FILE")
        if ca is not None and cert is None:
            # Without a certificate of our own there is no TLS to verify peers in.
            raise ConfigError("RECSERVE_TLS_CA_FILE needs RECSERVE_TLS_CERT_FILE and _KEY_FILE")
        tls = TlsConfig(cert, key, ca) if cert is not None and key is not None else None
        return cls(
            host=env.string("HOST", "0.0.0.0"),
            grpc_port=env.integer("GRPC_PORT", 50051, min_value=0, max_value=65535),
            metrics_port=env.integer("METRICS_PORT", 9464, min_value=0, max_value=65535),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=env.choice("LOG_FORMAT", "json", ("json", "text")),
            max_connection_age_ms=env.integer("MAX_CONNECTION_AGE_MS", 30_000, min_value=1000),
            shutdown_grace_s=env.number("SHUTDOWN_GRACE_S", 10.0, max_value=600),
            shutdown_delay_s=env.number("SHUTDOWN_DELAY_S", 1.0, max_value=600),
            max_message_bytes=env.integer("MAX_MESSAGE_BYTES", 4 * 1024 * 1024, min_value=1024),
            max_concurrent_streams=env.integer("MAX_CONCURRENT_STREAMS", 256, min_value=1),
            event_loop=env.choice("EVENT_LOOP", "asyncio", ("asyncio", "uvloop")),
            tls=tls,
        )


@dataclass(frozen=True)
class RedisTlsConfig:
    # CA that signed the Redis server certificate (None: the system trust store).
    ca_file: str | None
    # Client certificate, for a Redis that requires one (`tls-auth-clients yes`).
    cert_file: str | None
    key_file: str | None


@dataclass(frozen=True)
class RedisConfig:
    url: str
    # Overrides a password in the URL (keep secrets out of URLs: they end up in logs).
    password: str | None
    socket_timeout_s: float
    max_connections: int
    # Only with a `rediss://` URL.
    tls: RedisTlsConfig | None = None

    @classmethod
    def from_env(cls, env: Env) -> RedisConfig:
        url = env.string("REDIS_URL", "redis://127.0.0.1:6379/0")
        ca = env.optional_string("REDIS_TLS_CA_FILE")
        cert = env.optional_string("REDIS_TLS_CERT_FILE")
        key = env.optional_string("REDIS_TLS_KEY_FILE")
        if (cert is None) != (key is None):
            raise ConfigError(
                "RECSERVE_REDIS_TLS_CERT_FILE and RECSERVE_REDIS_TLS_KEY_FILE must be set together"
            )
        tls = None
        if ca is not None or cert is not None:
            if not url.startswith("rediss://"):
                raise ConfigError(
                    "RECSERVE_REDIS_TLS_* need a rediss:// RECSERVE_REDIS_URL (TLS), got another scheme"
                )
            tls = RedisTlsConfig(ca, cert, key)
        return cls(
            url=url,
            password=env.optional_string("REDIS_PASSWORD"),
            socket_timeout_s=env.number("REDIS_TIMEOUT_S", 0.5, min_value=0.001, max_value=60),
            max_connections=env.integer("REDIS_MAX_CONNECTIONS", 32, min_value=1, max_value=10_000),
            tls=tls,
        )
