"""The clients against a real cluster: two replicas of every service behind one DNS name each
(dnsmasq), reached as `dns://<dnsmasq>/gateway.recserve.test:<port>` with the clients' built-in
round_robin, health checking and retries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from chaos.cluster import Cluster
from chaos.pki import Pki, make_pki
from recserve.client import (
    AsyncRecommenderClient,
    InvalidArgument,
    Recommendations,
    RecommenderClient,
    RecommenderError,
    Unauthenticated,
    Unavailable,
)
from recserve.devstack.stack import wait_serving
from recserve.model import RedisLayout

Call = Callable[..., Any]  # the `call` fixture (tests/client/conftest.py)
Catalog = tuple[list[str], list[str]]
TOKEN = "client-test-token-5b2e"
BACKENDS = ("embedding_store", "candidates", "ranking")


def served(cluster: Cluster, replica: str) -> float:
    return cluster.rpcs_served(cluster.replica(replica))


def test_calls_return_typed_results_spread_over_both_gateways(
    call: Call, cluster: Cluster, gateways: str, catalog: Catalog
) -> None:
    users, items = catalog
    before = {r: served(cluster, r) for r in ("gateway-0", "gateway-1")}
    results = [call(gateways, lambda c: c.recommend(users[0], k=10), timeout_s=5)]
    with RecommenderClient(gateways, timeout_s=5) as client:
        results += [client.recommend(users[n % len(users)], k=10) for n in range(20)]
    for result in results:
        assert isinstance(result, Recommendations)
        assert len(result.items) == 10 and not result.degraded, result.degraded_detail
    similar = call(gateways, lambda c: c.similar_items(items[0], k=5), timeout_s=5)
    assert len(similar.item_ids) == 5 and items[0] not in similar.item_ids
    recorded = call(gateways, lambda c: c.record_events("client-typed", items[:2]), timeout_s=5)
    assert recorded.accepted == 2 and recorded.unknown_item_ids == []
    # round_robin: each replica answered part of them.
    assert all(served(cluster, r) > before[r] + 3 for r in before), before


def test_events_sent_again_with_their_ids_are_stored_once(
    call: Call, cluster: Cluster, gateways: str, catalog: Catalog, request: pytest.FixtureRequest
) -> None:
    _, items = catalog
    user = f"client-idempotent-{request.node.callspec.id}"
    ids = [f"{user}-a", f"{user}-b"]
    first = call(gateways, lambda c: c.record_events(user, items[:2], event_ids=ids), timeout_s=5)
    assert (first.accepted, first.duplicates) == (2, 0)
    # round_robin: the retries reach both gateway replicas.
    for _ in range(3):
        again = call(
            gateways, lambda c: c.record_events(user, items[:2], event_ids=ids), timeout_s=5
        )
        assert (again.accepted, again.duplicates) == (2, 2)
    key = RedisLayout().user_events_key(user)
    assert cluster.redis_client().llen(key) == 2


def test_invalid_argument_is_a_typed_error_with_the_message(
    call: Call, gateways: str, catalog: Catalog
) -> None:
    users, _ = catalog
    with pytest.raises(InvalidArgument) as info:
        call(gateways, lambda c: c.recommend(users[0], k=-1), timeout_s=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "k=-1" in info.value.message
    with pytest.raises(InvalidArgument, match="no-such-item"):
        call(gateways, lambda c: c.similar_items("no-such-item"), timeout_s=5)


def test_cli_reads_the_target_from_the_environment(gateways: str, catalog: Catalog) -> None:
    users, _ = catalog
    env = {**os.environ, "RECSERVE_TARGET": gateways}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "recserve.client", *args, "--wait", "10"]
        return subprocess.run(
            argv, check=False, env=env, capture_output=True, text=True, timeout=120
        )

    ok = cli("recommend", "--user-id", users[0], "-k", "3")
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)["items"]) == 3
    bad = cli("recommend", "--user-id", users[0], "-k", "-1")
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT" in bad.stderr and "k=-1" in bad.stderr


# --- TLS and the bearer token ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("client-pki"))


@pytest.fixture(scope="module")
def mtls_gateway(cluster: Cluster, pki: Pki) -> Iterator[str]:
    """A third gateway on the cluster's backends (127.0.0.1): TLS, client certificates from the
    CA required (mTLS), and a bearer token."""
    cluster.stack.start_service(
        "gateway",
        {
            **cluster.env,
            "RECSERVE_TLS_CERT_FILE": str(pki.server.cert),
            "RECSERVE_TLS_KEY_FILE": str(pki.server.key),
            "RECSERVE_TLS_CA_FILE": str(pki.ca),
            "RECSERVE_AUTH_TOKEN": TOKEN,
            **{f"RECSERVE_{s.upper()}_ADDR": cluster.target(s) for s in BACKENDS},
        },
    )
    address = cluster.stack.address("gateway")
    try:
        wait_serving(
            address,
            60,
            credentials=grpc.ssl_channel_credentials(
                pki.ca.read_bytes(), pki.client.key.read_bytes(), pki.client.cert.read_bytes()
            ),
        )
        yield address
    finally:
        cluster.stack.stop_process("gateway")


def mtls_options(pki: Pki) -> dict[str, Any]:
    return {
        "token": TOKEN,
        "tls_ca_file": str(pki.ca),
        "tls_cert_file": str(pki.client.cert),
        "tls_key_file": str(pki.client.key),
        "timeout_s": 5,
    }


def test_token_and_mtls_options(call: Call, mtls_gateway: str, pki: Pki, catalog: Catalog) -> None:
    result = call(mtls_gateway, lambda c: c.recommend(catalog[0][0], k=5), **mtls_options(pki))
    assert len(result.items) == 5 and not result.degraded, result.degraded_detail


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"token": None}, Unauthenticated),
        ({"token": "wrong"}, Unauthenticated),
        ({"tls_cert_file": None, "tls_key_file": None}, Unavailable),  # TLS, no certificate
        ({"tls_ca_file": None, "tls_cert_file": None, "tls_key_file": None}, Unavailable),
    ],
    ids=["no-token", "wrong-token", "no-client-certificate", "plaintext"],
)
def test_missing_token_or_certificate_is_refused(
    call: Call,
    mtls_gateway: str,
    pki: Pki,
    catalog: Catalog,
    change: dict[str, Any],
    error: type[RecommenderError],
) -> None:
    options = {**mtls_options(pki), **change}
    with pytest.raises(error):
        call(mtls_gateway, lambda c: c.recommend(catalog[0][0], k=5), **options)


def test_a_server_signed_by_another_ca_is_refused(
    call: Call, mtls_gateway: str, pki: Pki, catalog: Catalog
) -> None:
    options = {**mtls_options(pki), "tls_ca_file": str(pki.rogue_ca)}
    with pytest.raises(Unavailable):
        call(mtls_gateway, lambda c: c.recommend(catalog[0][0], k=5), **options)


# --- faults (these stop and restart replicas) --------------------------------------------------


def record_events_at_gateways(cluster: Cluster) -> float:
    """RecordEvents RPCs the gateway replicas have handled, whatever their status."""
    return sum(
        value
        for replica in cluster.replicas["gateway"]
        for key, value in cluster.metrics(replica).items()
        if key.startswith("recserve_rpc_total{") and 'grpc_method="RecordEvents"' in key
    )


def wait_not_degraded(gateways: str, user: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    with RecommenderClient(gateways, timeout_s=5) as client:
        while client.recommend(user, k=10).degraded:
            assert time.monotonic() < deadline, "the gateways did not recover"
            time.sleep(0.2)


def test_record_events_reaches_a_gateway_once_when_it_fails(
    cluster: Cluster, gateways: str, catalog: Catalog
) -> None:
    """With every embedding store down the gateways answer RecordEvents UNAVAILABLE (not
    confirmed stored); the client does not retry it: exactly one RPC reaches a gateway."""
    users, items = catalog
    stores = cluster.replicas["embedding_store"]
    for replica in stores:
        cluster.stop_replica(replica)
    try:
        with RecommenderClient(gateways, timeout_s=5) as client:
            client.recommend(users[0], k=10)  # both gateways have noticed (degraded answer)
            before = record_events_at_gateways(cluster)
            with pytest.raises(Unavailable, match="not confirmed stored"):
                client.record_events("client-not-retried", items[:2])
        time.sleep(0.2)
        assert record_events_at_gateways(cluster) - before == 1
    finally:
        for replica in stores:
            cluster.start_replica(replica)
        for replica in stores:
            cluster.wait_ready(replica)
        wait_not_degraded(gateways, users[0])


async def test_calls_keep_succeeding_when_a_gateway_replica_is_killed(
    cluster: Cluster, gateways: str, catalog: Catalog
) -> None:
    """A stream of sync and async Recommend / GetSimilarItems calls; SIGKILL one gateway
    replica mid-stream: the calls in flight on it are retried on the other, new calls go there."""
    users, items = catalog
    victim = cluster.replica("gateway-0")
    stop = threading.Event()

    def one(client: Any, n: int) -> Any:
        if n % 2:
            return client.similar_items(items[n % len(items)], k=10)
        return client.recommend(users[n % len(users)], k=10)

    def sync_stream(out: list[object]) -> None:
        with RecommenderClient(gateways, timeout_s=5) as client:
            n = 0
            while not stop.is_set():
                try:
                    out.append(one(client, n))
                except RecommenderError as exc:
                    out.append(exc)
                n += 1

    async def async_stream(client: AsyncRecommenderClient, first: int, out: list[object]) -> None:
        n = first
        while not stop.is_set():
            try:
                out.append(await one(client, n))
            except RecommenderError as exc:
                out.append(exc)
            n += 8

    sync_out: list[object] = []
    async_out: list[object] = []
    thread = threading.Thread(target=sync_stream, args=(sync_out,))
    try:
        async with AsyncRecommenderClient(gateways, timeout_s=5) as client:
            thread.start()
            tasks = [asyncio.ensure_future(async_stream(client, w, async_out)) for w in range(8)]
            await asyncio.sleep(1.5)
            victim_served = await asyncio.to_thread(cluster.rpcs_served, victim)
            await asyncio.to_thread(cluster.stop_replica, victim, signal.SIGKILL)
            at_kill = (len(sync_out), len(async_out))
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*tasks)
        thread.join(10)
    finally:
        stop.set()
        await asyncio.to_thread(cluster.restart_replica, victim)
    errors = [r for r in [*sync_out, *async_out] if isinstance(r, Exception)]
    assert errors == []
    assert victim_served > 10  # it had its share before the kill
    assert len(sync_out) - at_kill[0] > 10 and len(async_out) - at_kill[1] > 50, at_kill
    assert all(isinstance(r, Recommendations) and len(r.items) == 10 for r in sync_out + async_out)
