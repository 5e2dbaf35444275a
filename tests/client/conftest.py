"""A real two-replica cluster (chaos.cluster: Redis, dnsmasq, two replicas of every service on
127.0.0.2 and 127.0.0.3 behind one DNS name each) for the client tests, on the session's trained
catalog (the same directory as tests/chaos and tests/security use)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos import dns
from chaos.bundles import read_catalog, versions_in
from chaos.cluster import Cluster
from recserve.client import AsyncRecommenderClient, RecommenderClient

# For every service process. The gateways' budget is raised from 200 ms so that a busy test
# machine shows up as latency rather than as degraded answers: these tests are about the client.
SERVICE_ENV = {
    "RECSERVE_LOG_LEVEL": "WARNING",
    "RECSERVE_MODEL_POLL_INTERVAL_S": "0.5",
    "RECSERVE_REQUEST_BUDGET_MS": "3000",
}

# call(target, fn, **client options): fn(client) with a new client of the parametrized kind;
# fn is the same for both (the async client's methods return awaitables, awaited here).
Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    def sync(target: str, fn: Callable[[Any], Any], **options: Any) -> Any:
        with RecommenderClient(target, **options) as client:
            return fn(client)

    def asynchronous(target: str, fn: Callable[[Any], Any], **options: Any) -> Any:
        async def run() -> Any:
            async with AsyncRecommenderClient(target, **options) as client:
                return await fn(client)

        return asyncio.run(run())

    return sync if request.param == "sync" else asynchronous


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, catalog_bundles: Path) -> Iterator[Cluster]:
    if not dns.available():
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    cluster = Cluster(
        tmp_path_factory.mktemp("client-cluster"),
        catalog_bundles,
        env=SERVICE_ENV,
        resolver="dns",
    )
    cluster.start(versions_in(catalog_bundles)[0])
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def catalog(catalog_bundles: Path) -> tuple[list[str], list[str]]:
    """(user ids, item ids) of the served version."""
    return read_catalog(catalog_bundles / versions_in(catalog_bundles)[0])


@pytest.fixture(scope="session")
def gateways(cluster: Cluster) -> str:
    """`dns://<dnsmasq>/gateway.recserve.test:<port>`: both gateway replicas."""
    return cluster.target("gateway")
