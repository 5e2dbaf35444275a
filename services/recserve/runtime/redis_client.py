"""Async Redis client with fail-fast defaults (redis-py otherwise retries for seconds)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from recserve.runtime.config import RedisConfig


def connect(config: RedisConfig) -> aioredis.Redis:
    tls: dict[str, Any] = {}
    if config.tls is not None:
        tls = {
            "ssl_ca_certs": config.tls.ca_file,
            "ssl_certfile": config.tls.cert_file,
            "ssl_keyfile": config.tls.key_file,
        }
    pool = aioredis.BlockingConnectionPool.from_url(
        config.url,
        max_connections=config.max_connections,
        # Waiting for a pooled connection counts against the request's budget, not forever.
        timeout=config.socket_timeout_s,
        socket_timeout=config.socket_timeout_s,
        socket_connect_timeout=config.socket_timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
        **tls,
    )
    if config.password is not None:
        # from_url lets the URL's password win over keyword arguments; the documented
        # contract is the other way round (RECSERVE_REDIS_PASSWORD overrides the URL).
        pool.connection_kwargs["password"] = config.password
    return aioredis.Redis(connection_pool=pool)
