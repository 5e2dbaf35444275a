"""An asyncio Redis client and a CatalogStore on the session's real redis-server."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from recserve.catalog import CatalogStore
from recserve.devstack.stack import wait_for_redis


@pytest.fixture
async def aclient(redis_client: redis.Redis) -> AsyncIterator[aioredis.Redis]:
    # redis_client flushed the server; the async client shares it.
    kwargs = redis_client.connection_pool.connection_kwargs
    client = aioredis.Redis(host=kwargs["host"], port=kwargs["port"], socket_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
def store(aclient: aioredis.Redis) -> CatalogStore:
    return CatalogStore(aclient)


def start_redis(directory: Path, port: int, *, aof: bool) -> subprocess.Popen[bytes]:
    """A redis-server of a test's own (to kill and restart), with or without AOF
    (`appendfsync always`: a kill loses nothing it acknowledged)."""
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
    )
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         *persistence, "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_redis(redis.Redis(port=port, socket_timeout=5))
    return process
