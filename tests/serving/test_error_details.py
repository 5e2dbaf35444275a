"""INVALID_ARGUMENT over a real socket carries a google.rpc.BadRequest naming the field, with the
message unchanged; the client package exposes the violations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

from recserve.client.errors import InvalidArgument, error_for
from recserve.runtime import errors
from recserve.runtime.config import Env, ServerConfig
from recserve.runtime.server import Method, RpcContext, Service, ServiceRunner
from recserve.v1 import recommender_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["RecommenderService"]
RECOMMEND = "/recserve.v1.RecommenderService/Recommend"
FIELD = 'items[3].numeric_attributes["margin"]'


async def recommend(request: pb.RecommendRequest, context: RpcContext) -> pb.RecommendResponse:
    if request.k == 0:
        raise errors.InvalidArgument(f"{FIELD} must be finite", field=FIELD)
    if request.k < 0:
        raise errors.InvalidArgument("k must be positive")
    errors.require_at_most(len(request.recent_item_ids), 2, "recent_item_ids")
    return pb.RecommendResponse()


@pytest.fixture
async def runner() -> AsyncIterator[ServiceRunner]:
    config = ServerConfig.from_env(
        Env({"RECSERVE_GRPC_PORT": "0", "RECSERVE_METRICS_PORT": "0", "RECSERVE_HOST": "127.0.0.1"})
    )
    runner = ServiceRunner(
        config, [Service(SERVICE, [Method("Recommend", pb.RecommendRequest, recommend)])]
    )
    await runner.start()
    yield runner
    await runner.server.stop(0)


async def failed_call(runner: ServiceRunner, request: pb.RecommendRequest) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runner.bound_port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(RECOMMEND)(request.SerializeToString(), timeout=5)
    return info.value


def violations(call: grpc.Call) -> list[tuple[str, str]]:
    status = rpc_status.from_call(call)
    assert status is not None and status.code == code_pb2.INVALID_ARGUMENT
    found = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        found += [(v.field, v.description) for v in bad_request.field_violations]
    return found


async def test_a_named_field_is_a_field_violation_and_the_message_is_unchanged(
    runner: ServiceRunner,
) -> None:
    error = await failed_call(runner, pb.RecommendRequest(k=0))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{FIELD} must be finite"
    assert violations(error) == [(FIELD, f"{FIELD} must be finite")]


async def test_the_count_limit_names_its_field(runner: ServiceRunner) -> None:
    request = pb.RecommendRequest(k=1, recent_item_ids=["a", "b", "c"])
    error = await failed_call(runner, request)
    assert error.details() == "3 recent_item_ids in one request; the limit is 2"
    assert [field for field, _ in violations(error)] == ["recent_item_ids"]


async def test_an_error_without_a_field_has_no_status_details(runner: ServiceRunner) -> None:
    error = await failed_call(runner, pb.RecommendRequest(k=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "k must be positive"
    assert rpc_status.from_call(error) is None


async def test_the_client_error_exposes_the_violations(runner: ServiceRunner) -> None:
    typed = error_for(await failed_call(runner, pb.RecommendRequest(k=0)))
    assert isinstance(typed, InvalidArgument)
    assert typed.message == f"{FIELD} must be finite"
    assert [v.field for v in typed.field_violations] == [FIELD]
    plain = error_for(await failed_call(runner, pb.RecommendRequest(k=-1)))
    assert isinstance(plain, InvalidArgument) and plain.field_violations == []
