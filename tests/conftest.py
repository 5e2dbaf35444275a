"""Shared fixtures: a real redis-server on a free port; one small trained catalog per session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from recserve.devstack.stack import free_port, wait_for_redis


class RedisServer:
    def __init__(self, directory: Path):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed; run `make bootstrap`")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        client = self.client()
        wait_for_redis(client)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def catalog_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle version trained once per session, shared by the chaos, security and client
    tests (the repository root is on sys.path through pytest's `pythonpath`)."""
    from chaos.bundles import train_versions

    root = tmp_path_factory.getbasetemp() / "catalog-bundles"
    train_versions(root, 1)
    return root
