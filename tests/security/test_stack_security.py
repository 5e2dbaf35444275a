"""Security properties of a running stack (real processes): bearer-token authentication on the
gateway, Redis AUTH, message-size, stream and in-flight limits, tampered bundles never loaded
(nor unpickled), and no secrets or user ids in the info-level logs after all of that traffic.
The bundle format's own checks are unit-tested in tests/model/test_bundle.py."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chaos.bundles import read_catalog, train_versions
from recserve.devstack import SERVICES, Stack, StackPorts
from recserve.v1 import embedding_store_pb2, types_pb2
from recserve.v1 import recommender_pb2 as pb

TOKEN = "gateway-token-3b9e6a"
WRONG_TOKEN = "not-the-token-8d2f"
REDIS_PASSWORD = "redis-password-c47a1"
# Distinctive ids, so the log check below cannot miss them.
USERS = ["user-private-91f3", "user-private-0c5d"]
LIMITS = {"RECSERVE_MAX_MESSAGE_BYTES": "65536", "RECSERVE_MAX_CONCURRENT_STREAMS": "4"}
MAX_IN_FLIGHT = 6
RECOMMEND = "/recserve.v1.RecommenderService/Recommend"


class Marker:
    """Unpickling this creates a file: proof that a bundle was (or was not) unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def versions(catalog_bundles: Path) -> list[str]:
    """A (served at start) and B (published by the tampered-bundle test)."""
    return train_versions(catalog_bundles, 2)[:2]


@pytest.fixture(scope="module")
def serve_dir(
    tmp_path_factory: pytest.TempPathFactory, catalog_bundles: Path, versions: list[str]
) -> Path:
    """What candidates and ranking load from: A as trained, B with a pickle planted in its ScaNN
    directory (publish reads B from the pristine copy and accepts it)."""
    root = tmp_path_factory.mktemp("serve-bundles")
    for version in versions:
        shutil.copytree(catalog_bundles / version, root / version)
    return root


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    catalog_bundles: Path,
    serve_dir: Path,
    versions: list[str],
) -> Iterator[Stack]:
    stack = Stack(
        tmp_path_factory.mktemp("secure-run"),
        catalog_bundles,
        StackPorts.free(),
        redis_password=REDIS_PASSWORD,
    )
    common = {
        "RECSERVE_LOG_LEVEL": "INFO",
        "RECSERVE_MODEL_POLL_INTERVAL_S": "0.2",
        "RECSERVE_BUNDLE_DIR": str(serve_dir),
        **LIMITS,
    }
    gateway = {"RECSERVE_AUTH_TOKEN": TOKEN, "RECSERVE_MAX_IN_FLIGHT_REQUESTS": str(MAX_IN_FLIGHT)}
    try:
        stack.start_redis()
        stack.publish(versions[0])
        for service in SERVICES:
            stack.start_service(service, {**common, **(gateway if service == "gateway" else {})})
        stack.wait_ready()
    except Exception:
        stack.down()
        raise
    yield stack
    stack.down()


@pytest.fixture(scope="module")
def catalog(catalog_bundles: Path, versions: list[str]) -> tuple[list[str], list[str]]:
    return read_catalog(catalog_bundles / versions[0])


def call(
    channel: grpc.Channel,
    request: pb.RecommendRequest,
    token: str | None = TOKEN,
    scheme: str = "Bearer",
) -> pb.RecommendResponse:
    metadata = (("authorization", f"{scheme} {token}"),) if token is not None else ()
    reply = channel.unary_unary(RECOMMEND)(
        request.SerializeToString(), timeout=5, metadata=metadata
    )
    return pb.RecommendResponse.FromString(reply)


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "scheme"),
    [
        (None, "Bearer"),
        (WRONG_TOKEN, "Bearer"),
        (TOKEN, "Basic"),
        (TOKEN + "x", "Bearer"),
        ("", "Bearer"),
    ],
    ids=["missing", "wrong", "wrong-scheme", "longer", "empty"],
)
def test_gateway_requires_the_bearer_token(stack: Stack, token: str | None, scheme: str) -> None:
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        for path, request in (
            (RECOMMEND, pb.RecommendRequest(user_id=USERS[0], k=5)),
            (
                "/recserve.v1.RecommenderService/RecordEvents",
                pb.RecordEventsRequest(user_id=USERS[0], events=[types_pb2.Event(item_id="x")]),
            ),
            (
                "/recserve.v1.RecommenderService/GetSimilarItems",
                pb.GetSimilarItemsRequest(item_id="x", k=5),
            ),
        ):
            metadata = (("authorization", f"{scheme} {token}"),) if token is not None else ()
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(path)(request.SerializeToString(), timeout=5, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, path  # type: ignore[attr-defined]
            assert "bearer token" in (info.value.details() or "")  # type: ignore[attr-defined]


def test_valid_token_is_served_and_probes_need_none(
    stack: Stack, catalog: tuple[list[str], list[str]]
) -> None:
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        reply = call(channel, pb.RecommendRequest(user_id=catalog[0][0], k=5))
        assert len(reply.items) == 5 and not reply.degraded
        # Kubernetes' gRPC probes carry no token.
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="readiness"), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        recorded = channel.unary_unary("/recserve.v1.RecommenderService/RecordEvents")(
            pb.RecordEventsRequest(
                user_id=USERS[0], events=[types_pb2.Event(item_id=i) for i in catalog[1][:2]]
            ).SerializeToString(),
            timeout=5,
            metadata=(("authorization", f"bearer {TOKEN}"),),  # the scheme is case-insensitive
        )
        assert pb.RecordEventsResponse.FromString(recorded).accepted == 2


# --- Redis AUTH --------------------------------------------------------------------------------


def test_services_use_redis_auth_from_the_environment(
    stack: Stack, catalog: tuple[list[str], list[str]]
) -> None:
    assert "@" not in stack.redis_url  # services got the password as RECSERVE_REDIS_PASSWORD only
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(stack.redis_url, socket_timeout=5).get("recserve:active")
    # The stack is SERVING (the services read the model through AUTH) and writes go through.
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        channel.unary_unary("/recserve.v1.RecommenderService/RecordEvents")(
            pb.RecordEventsRequest(
                user_id=USERS[1], events=[types_pb2.Event(item_id=catalog[1][3])]
            ).SerializeToString(),
            timeout=5,
            metadata=metadata,
        )
        reply = call(channel, pb.RecommendRequest(user_id=USERS[1], k=5))
    assert not reply.degraded and catalog[1][3] not in [i.item_id for i in reply.items]


# --- limits ------------------------------------------------------------------------------------


def test_oversized_messages_are_refused_and_the_service_goes_on(
    stack: Stack, catalog: tuple[list[str], list[str]]
) -> None:
    big = "x" * 100_000  # RECSERVE_MAX_MESSAGE_BYTES=65536
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        with pytest.raises(grpc.RpcError) as info:
            call(channel, pb.RecommendRequest(user_id=USERS[0], k=5, context={"note": big}))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert len(call(channel, pb.RecommendRequest(user_id=catalog[0][0], k=5)).items) == 5
    with grpc.insecure_channel(stack.address("embedding_store")) as channel:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/recserve.v1.EmbeddingStoreService/GetUserStates")(
                embedding_store_pb2.GetUserStatesRequest(
                    queries=[embedding_store_pb2.UserStateQuery(user_id=big)]
                ).SerializeToString(),
                timeout=5,
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def in_flight(stack: Stack) -> float:
    url = f"http://127.0.0.1:{stack.ports.metrics['gateway']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(
                'recserve_rpc_in_flight{grpc_method="Recommend",'
                'grpc_service="recserve.v1.RecommenderService"}'
            ):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def concurrent_recommends(
    stack: Stack, user: str, channels: int, per_channel: int
) -> tuple[list[object], float]:
    """Fires channels x per_channel Recommend calls at once while ranking is stopped (each
    then takes its whole budget); returns the outcomes and the highest in-flight gauge seen."""
    ranking = stack.pid("ranking")
    assert ranking is not None
    peak = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, in_flight(stack))
            time.sleep(0.01)

    os.kill(ranking, signal.SIGSTOP)
    watcher = threading.Thread(target=watch)
    watcher.start()
    opened = [
        # Separate connections (channels to one target otherwise share one).
        grpc.insecure_channel(
            stack.address("gateway"), options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(channels)
    ]
    for channel in opened:
        # Connected, so the client knows the server's SETTINGS (its stream limit) before the
        # burst; streams opened before that are refused (REFUSED_STREAM -> UNAVAILABLE).
        grpc.channel_ready_future(channel).result(timeout=10)
    try:
        with futures.ThreadPoolExecutor(channels * per_channel) as pool:
            jobs = [
                pool.submit(_outcome, opened[n % channels], user)
                for n in range(channels * per_channel)
            ]
            outcomes = [job.result() for job in jobs]
    finally:
        os.kill(ranking, signal.SIGCONT)
        done.set()
        watcher.join()
        for channel in opened:
            channel.close()
    return outcomes, peak


def _outcome(channel: grpc.Channel, user: str) -> object:
    try:
        return call(channel, pb.RecommendRequest(user_id=user, k=5))
    except grpc.RpcError as exc:
        return exc


def test_concurrent_streams_per_connection_are_limited(
    stack: Stack, catalog: tuple[list[str], list[str]]
) -> None:
    outcomes, peak = concurrent_recommends(stack, catalog[0][0], channels=1, per_channel=12)
    # One connection never has more than 4 calls in the gateway (RECSERVE_MAX_CONCURRENT_STREAMS).
    # Streams beyond the limit are refused by the HTTP/2 layer (REFUSED_STREAM, which the
    # client sees as UNAVAILABLE: nothing was processed, safe to retry) or wait in the client.
    assert 1 <= peak <= 4, peak
    answered = [o for o in outcomes if isinstance(o, pb.RecommendResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert len(answered) >= 4
    assert all(o.degraded_reason == types_pb2.DEGRADED_REASON_RANKING_UNAVAILABLE for o in answered)
    for error in refused:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error  # type: ignore[attr-defined]
        assert "RST_STREAM" in (error.details() or ""), error  # type: ignore[attr-defined]


def test_requests_beyond_the_in_flight_limit_are_shed(
    stack: Stack, catalog: tuple[list[str], list[str]]
) -> None:
    # 3 calls per connection: under the stream limit, so only the in-flight limit refuses.
    outcomes, _ = concurrent_recommends(stack, catalog[0][0], channels=5, per_channel=3)
    shed = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    served = [o for o in outcomes if isinstance(o, pb.RecommendResponse)]
    assert shed and served and len(shed) + len(served) == 15
    for error in shed:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert f"more than {MAX_IN_FLIGHT} requests in flight" in (error.details() or "")  # type: ignore[attr-defined]
    assert len(served) >= MAX_IN_FLIGHT


# --- bundles -------------------------------------------------------------------------------------


def metric(stack: Stack, service: str, prefix: str) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{stack.ports.metrics[service]}/metrics", timeout=5
    ) as reply:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in reply.read().decode().splitlines()
            if line.startswith(prefix)
        )


def test_tampered_bundle_is_never_loaded_nor_unpickled(
    stack: Stack,
    serve_dir: Path,
    versions: list[str],
    catalog: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    old, new = versions
    marker = tmp_path / "unpickled"
    # ScaNN's loader unpickles scann/scann_docids.pkl when present; the bundle loader refuses
    # any file the manifest does not list before ScaNN sees the directory.
    (serve_dir / new / "scann" / "scann_docids.pkl").write_bytes(pickle.dumps(Marker(marker)))
    stack.publish(new)  # from the pristine copy: the publisher accepts it
    errors = 'recserve_model_reloads_total{outcome="error"}'
    deadline = time.monotonic() + 30
    # The first try and two retries under backoff (0.2 s, then 0.4 s): each refused the same way.
    while metric(stack, "candidates", errors) < 3:
        assert time.monotonic() < deadline, "candidates did not try the new version"
        time.sleep(0.1)
    assert metric(stack, "candidates", "recserve_model_load_failing") == 1
    assert not marker.exists(), "the planted pickle was unpickled"
    assert "not in the manifest" in (stack.run_dir / "logs" / "candidates.log").read_text()
    # The fleet keeps serving the last good version, complete answers, no errors.
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        for user in catalog[0][:5]:
            reply = call(channel, pb.RecommendRequest(user_id=user, k=5))
            assert reply.model_version == old and not reply.degraded


# --- logs: last, after all of the traffic above ---------------------------------------------------------


def test_no_secrets_or_user_ids_in_info_logs(
    stack: Stack, catalog: tuple[list[str], list[str]]
) -> None:
    # Error paths too: Redis stalled for a moment makes every service log warnings.
    redis_pid = stack.pid("redis")
    assert redis_pid is not None
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        with grpc.insecure_channel(stack.address("gateway")) as channel:
            for user in USERS:
                call(channel, pb.RecommendRequest(user_id=user, k=5))
            time.sleep(1.5)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    logs = {
        path.name: path.read_text(errors="replace")
        for path in (stack.run_dir / "logs").glob("*.log")
    }
    assert {f"{s}.log" for s in SERVICES} <= set(logs)
    # Not vacuous: the services did log at info level and logged the failures.
    assert all('"level": "INFO"' in logs[f"{s}.log"] for s in SERVICES)
    assert any('"level": "WARNING"' in text for text in logs.values())
    for name, text in logs.items():
        for secret in (
            TOKEN,
            WRONG_TOKEN,
            REDIS_PASSWORD,
            *USERS,
            catalog[0][0] and f'"{catalog[0][0]}"',
        ):
            assert secret not in text, f"{secret!r} found in {name}"
