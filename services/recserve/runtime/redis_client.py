"""Async Redis client with fail-fast defaults (redis-py otherwise retries for seconds)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from recserve.runtime.config import RedisConfig


def text(raw: bytes | str | None) -> str | None:
    """redis-py returns bytes unless decode_responses is set; we keep bytes for vectors."""
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else raw


def connect(config: RedisConfig) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        config.url,
        password=config.password,
        max_connections=config.max_connections,
        # Waiting for a pooled connection counts against the request's budget, not forever.
        timeout=config.socket_timeout_s,
        socket_timeout=config.socket_timeout_s,
        socket_connect_timeout=config.socket_timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)
