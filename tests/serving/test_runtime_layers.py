"""Each per-call layer of the runtime on its own, with a fake call context (no sockets)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

import grpc
import pytest
import redis
from google.protobuf.message import Message
from prometheus_client import REGISTRY

from recserve.runtime import errors
from recserve.runtime.layers import (
    Call,
    Endpoint,
    Layer,
    LoadShedder,
    RpcContext,
    auth_layer,
    compose,
    decoding_endpoint,
    error_layer,
    metrics_layer,
)
from recserve.v1 import recommender_pb2 as pb

REPLY = pb.RecommendResponse(model_version="v")


class Aborted(Exception):
    """What the fake context raises from abort(), as grpc.aio raises AbortError."""


class FakeContext:
    def __init__(
        self, metadata: Sequence[tuple[str, str | bytes]] = (), time_remaining: float | None = None
    ):
        self.metadata = tuple(metadata)
        self.remaining = time_remaining
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return self.remaining

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted(details)


def make_call(body: bytes = b"", **context: object) -> Call:
    return Call(body, FakeContext(**context))  # type: ignore[arg-type]


async def ok(_: Call) -> Message:
    return REPLY


def raising(exc: BaseException) -> Endpoint:
    async def endpoint(_: Call) -> Message:
        raise exc

    return endpoint


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- compose -----------------------------------------------------------------------------------


async def test_compose_runs_layers_outermost_first_around_the_endpoint() -> None:
    seen: list[str] = []

    def layer(name: str) -> Layer:
        async def run(call: Call, next_: Endpoint) -> Message:
            seen.append(f"{name}>")
            reply = await next_(call)
            seen.append(f"<{name}")
            return reply

        return run

    async def endpoint(_: Call) -> Message:
        seen.append("endpoint")
        return REPLY

    assert await compose([layer("a"), layer("b")], endpoint)(make_call()) is REPLY
    assert seen == ["a>", "b>", "endpoint", "<b", "<a"]


async def test_a_layer_can_answer_without_calling_the_rest() -> None:
    async def refuse(call: Call, next_: Endpoint) -> Message:
        return pb.RecommendResponse(model_version="refused")

    reply = await compose([refuse], raising(AssertionError("not reached")))(make_call())
    assert reply == pb.RecommendResponse(model_version="refused")


# --- metrics -----------------------------------------------------------------------------------

LABELS = {"grpc_service": "test.Layers", "grpc_method": "Metrics"}


async def test_metrics_layer_counts_by_the_code_the_call_ends_with() -> None:
    layer = metrics_layer("test.Layers", "Metrics")
    before_ok = sample("recserve_rpc_total", **LABELS, grpc_code="OK")
    before_bad = sample("recserve_rpc_total", **LABELS, grpc_code="INVALID_ARGUMENT")
    before_hist = sample("recserve_rpc_duration_seconds_count", **LABELS, grpc_code="OK")

    in_flight_during: list[float] = []

    async def endpoint(call: Call) -> Message:
        in_flight_during.append(sample("recserve_rpc_in_flight", **LABELS))
        return REPLY

    assert await layer(make_call(), endpoint) is REPLY

    async def refused(call: Call) -> Message:
        call.code = grpc.StatusCode.INVALID_ARGUMENT  # as the error layer records it
        raise Aborted("bad")

    with pytest.raises(Aborted):
        await layer(make_call(), refused)

    assert in_flight_during == [1.0]
    assert sample("recserve_rpc_in_flight", **LABELS) == 0.0
    assert sample("recserve_rpc_total", **LABELS, grpc_code="OK") == before_ok + 1
    assert sample("recserve_rpc_total", **LABELS, grpc_code="INVALID_ARGUMENT") == before_bad + 1
    assert sample("recserve_rpc_duration_seconds_count", **LABELS, grpc_code="OK") == (
        before_hist + 1
    )


# --- error mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "details"),
    [
        (errors.InvalidArgument("k must be positive"), "INVALID_ARGUMENT", "k must be positive"),
        (errors.ResourceExhausted("full"), "RESOURCE_EXHAUSTED", "full"),
        (errors.FailedPrecondition("old"), "FAILED_PRECONDITION", "old"),
        (errors.Unavailable("later"), "UNAVAILABLE", "later"),
        (errors.Unauthenticated("who"), "UNAUTHENTICATED", "who"),
        (errors.ServiceError("other"), "UNKNOWN", "other"),
        (
            redis.ConnectionError("redis://secret-host:6379"),
            "UNAVAILABLE",
            "Redis unavailable (ConnectionError); retry",
        ),
        (redis.TimeoutError("slow"), "UNAVAILABLE", "Redis unavailable (TimeoutError); retry"),
        (RuntimeError("bug"), "INTERNAL", "internal error"),
    ],
)
async def test_error_layer_aborts_with_the_mapped_status(
    exc: Exception, code: str, details: str
) -> None:
    call = make_call()
    with pytest.raises(Aborted):
        await error_layer("M")(call, raising(exc))
    assert call.code == grpc.StatusCode[code]
    assert call.context.aborted == (grpc.StatusCode[code], details)


async def test_error_layer_logs_a_traceback_only_for_bugs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="recserve.runtime.layers"):
        with pytest.raises(Aborted):
            await error_layer("M")(make_call(), raising(errors.InvalidArgument("x")))
        assert not caplog.records
        with pytest.raises(Aborted):
            await error_layer("M")(make_call(), raising(RuntimeError("bug")))
    [record] = caplog.records
    assert record.getMessage() == "unhandled error in M" and record.exc_info is not None


async def test_error_layer_passes_success_and_cancellation_through() -> None:
    call = make_call()
    assert await error_layer("M")(call, ok) is REPLY
    assert call.code == grpc.StatusCode.OK and call.context.aborted is None

    call = make_call()
    with pytest.raises(asyncio.CancelledError):
        await error_layer("M")(call, raising(asyncio.CancelledError()))
    assert call.code == grpc.StatusCode.CANCELLED and call.context.aborted is None


# --- load shedding -------------------------------------------------------------------------------


async def test_load_shedder_refuses_beyond_the_limit_and_releases_its_slots() -> None:
    shedder = LoadShedder(2)
    release = asyncio.Event()

    async def slow(_: Call) -> Message:
        await release.wait()
        return REPLY

    held = [asyncio.ensure_future(shedder(make_call(), slow)) for _ in range(2)]
    await asyncio.sleep(0)
    assert shedder.in_flight == 2
    with pytest.raises(errors.ResourceExhausted, match="more than 2 requests in flight"):
        await shedder(make_call(), ok)
    assert shedder.in_flight == 2  # the refused call gave its slot back
    release.set()
    assert await asyncio.gather(*held) == [REPLY, REPLY]
    assert shedder.in_flight == 0
    with pytest.raises(RuntimeError):
        await shedder(make_call(), raising(RuntimeError("bug")))
    assert shedder.in_flight == 0
    assert await shedder(make_call(), ok) is REPLY


# --- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", "Basic s3cret"),),
        (("authorization", "s3cret"),),
        (("authorization", "Bearer s3cret-and-more"),),
        (("authorization-bin", b"Bearer s3cret"),),
        (("x-other", "Bearer s3cret"),),
    ],
)
async def test_auth_layer_refuses_without_the_bearer_token(
    metadata: tuple[tuple[str, str | bytes], ...],
) -> None:
    with pytest.raises(errors.Unauthenticated, match="missing or invalid bearer token"):
        await auth_layer("s3cret")(make_call(metadata=metadata), ok)


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"])
async def test_auth_layer_lets_the_token_through(header: str) -> None:
    metadata = (("x-other", "1"), ("authorization", header))
    assert await auth_layer("s3cret")(make_call(metadata=metadata), ok) is REPLY


# --- decoding ------------------------------------------------------------------------------------


async def test_decoding_endpoint_hands_the_decoded_request_and_deadline_to_the_handler() -> None:
    seen: list[tuple[Message, RpcContext]] = []

    async def handler(request: pb.RecommendRequest, context: RpcContext) -> Message:
        seen.append((request, context))
        return REPLY

    endpoint = decoding_endpoint(pb.RecommendRequest, handler)
    body = pb.RecommendRequest(user_id="u1", k=3).SerializeToString()
    assert await endpoint(make_call(body, time_remaining=1.5)) is REPLY
    assert seen == [(pb.RecommendRequest(user_id="u1", k=3), RpcContext(1.5))]


@pytest.mark.parametrize("body", [b"\xff", b"\x0a\x05ab", b"\x08"])
async def test_decoding_endpoint_refuses_an_undecodable_body(body: bytes) -> None:
    async def handler(request: pb.RecommendRequest, context: RpcContext) -> Message:
        raise AssertionError("not reached")

    endpoint = decoding_endpoint(pb.RecommendRequest, handler)
    with pytest.raises(
        errors.InvalidArgument,
        match=re.escape("request body is not a valid recserve.v1.RecommendRequest"),
    ):
        await endpoint(make_call(body))
