"""Shared runtime over a real socket: decoding, status mapping, auth, health, reflection, metrics."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from recserve.runtime import errors
from recserve.runtime.config import Env, ServerConfig
from recserve.runtime.server import Method, RpcContext, Service, ServiceRunner
from recserve.v1 import recommender_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["RecommenderService"]
RECOMMEND = "/recserve.v1.RecommenderService/Recommend"


async def recommend(request: pb.RecommendRequest, context: RpcContext) -> pb.RecommendResponse:
    if request.k < 0:
        raise errors.InvalidArgument("k must be positive")
    if request.k == 999:
        raise RuntimeError("bug")
    return pb.RecommendResponse(model_version=f"echo-{request.user_id}")


@pytest.fixture
async def runner() -> AsyncIterator[ServiceRunner]:
    config = ServerConfig.from_env(
        Env({"RECSERVE_GRPC_PORT": "0", "RECSERVE_METRICS_PORT": "0", "RECSERVE_HOST": "127.0.0.1"})
    )
    service = Service(
        SERVICE,
        [Method("Recommend", pb.RecommendRequest, recommend)],
        auth_token="s3cret",
    )
    runner = ServiceRunner(config, [service])
    await runner.start()
    yield runner
    await runner.server.stop(0)


def channel(runner: ServiceRunner) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{runner.bound_port}")


AUTH = (("authorization", "Bearer s3cret"),)


async def call_raw(runner: ServiceRunner, body: bytes, metadata=AUTH) -> bytes:  # type: ignore[no-untyped-def]
    async with channel(runner) as ch:
        method = ch.unary_unary(RECOMMEND)
        return await method(body, metadata=metadata, timeout=5)  # type: ignore[no-any-return]


async def test_valid_request_roundtrip(runner: ServiceRunner) -> None:
    raw = await call_raw(runner, pb.RecommendRequest(user_id="7", k=3).SerializeToString())
    assert pb.RecommendResponse.FromString(raw).model_version == "echo-7"


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x22\x80"])
async def test_undecodable_body_is_invalid_argument(runner: ServiceRunner, body: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_raw(runner, body)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "recserve.v1.RecommendRequest" in (info.value.details() or "")


async def test_domain_error_maps_to_status_with_message(runner: ServiceRunner) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_raw(runner, pb.RecommendRequest(k=-1).SerializeToString())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "k must be positive"


async def test_bug_is_internal_without_leaking_details(runner: ServiceRunner) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_raw(runner, pb.RecommendRequest(k=999).SerializeToString())
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error"


@pytest.mark.parametrize(
    "metadata", [(), (("authorization", "Bearer nope"),), (("authorization", "s3cret"),)]
)
async def test_missing_or_wrong_token_is_unauthenticated(runner: ServiceRunner, metadata) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_raw(runner, pb.RecommendRequest(k=1).SerializeToString(), metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_follows_readiness_and_shutdown(runner: ServiceRunner) -> None:
    async with channel(runner) as ch:
        stub = health_pb2_grpc.HealthStub(ch)

        async def status(name: str) -> int:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            return int(reply.status)

        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        assert await status("readiness") == not_serving
        assert await status("liveness") == serving
        await runner.set_ready(True)
        assert await status("readiness") == serving
        assert await status(SERVICE.full_name) == serving
        await runner.health.enter_graceful_shutdown()
        assert await status("readiness") == not_serving


async def test_reflection_lists_the_service(runner: ServiceRunner) -> None:
    async with channel(runner) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def requests():  # type: ignore[no-untyped-def]
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for reply in stub.ServerReflectionInfo(requests()):
            names = {s.name for s in reply.list_services_response.service}
            assert SERVICE.full_name in names
            assert "grpc.health.v1.Health" in names
            break


async def test_metrics_count_requests_by_code(runner: ServiceRunner) -> None:
    await call_raw(runner, pb.RecommendRequest(k=1).SerializeToString())
    with pytest.raises(grpc.aio.AioRpcError):
        await call_raw(runner, b"\xff")
    body = urllib.request.urlopen(f"http://127.0.0.1:{runner.metrics_port}/metrics").read().decode()
    labels = 'grpc_method="Recommend",grpc_service="recserve.v1.RecommenderService"'
    assert f'recserve_rpc_total{{grpc_code="OK",{labels}}}' in body
    assert f'recserve_rpc_total{{grpc_code="INVALID_ARGUMENT",{labels}}}' in body
    assert "service=" not in body.replace("grpc_service=", "")
    assert "recserve_rpc_duration_seconds_bucket" in body
