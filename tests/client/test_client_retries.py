"""What the clients retry, against a gRPC server whose answers the test scripts: each method
answers the scripted statuses in turn, then OK, and counts the attempts that reached it (the
real gateway cannot be made to answer Recommend with UNAVAILABLE on demand)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from recserve.client import (
    DeadlineExceeded,
    InvalidArgument,
    RecommenderError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from recserve.client.options import SERVICE
from recserve.v1 import recommender_pb2 as pb

Call = Callable[..., Any]  # the `call` fixture (tests/client/conftest.py)

MESSAGES: dict[str, tuple[Any, Any]] = {
    "Recommend": (pb.RecommendRequest, pb.RecommendResponse(model_version="scripted")),
    "GetSimilarItems": (pb.GetSimilarItemsRequest, pb.GetSimilarItemsResponse()),
    "RecordEvents": (pb.RecordEventsRequest, pb.RecordEventsResponse(accepted=1)),
}
# A script entry is a status to answer with, or seconds to stall before answering OK.
Step: TypeAlias = "grpc.StatusCode | float"


class ScriptedServer:
    def __init__(self, script: Mapping[str, Sequence[Step]]):
        self.script = script
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.server = grpc.server(ThreadPoolExecutor(8))
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._handler(name, response),
                request_deserializer=request_type.FromString,
                response_serializer=type(response).SerializeToString,
            )
            for name, (request_type, response) in MESSAGES.items()
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        checks = health.HealthServicer()
        checks.set("readiness", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checks, self.server)
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _handler(self, name: str, response: Any) -> Any:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                attempt = self.attempts[name]
                self.attempts[name] += 1
            steps = self.script.get(name, ())
            if attempt < len(steps):
                step = steps[attempt]
                if isinstance(step, grpc.StatusCode):
                    context.abort(step, f"scripted {step.name} #{attempt + 1}")
                time.sleep(step)
            return response

        return handle


@pytest.fixture
def scripted() -> Iterator[Callable[[Mapping[str, Sequence[Step]]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Mapping[str, Sequence[Step]]) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.server.stop(None)


UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def test_reads_are_retried_on_unavailable(
    call: Call, scripted: Callable[..., ScriptedServer]
) -> None:
    server = scripted({"Recommend": [UNAVAILABLE], "GetSimilarItems": [UNAVAILABLE] * 2})
    assert call(server.target, lambda c: c.recommend("u", k=3)).model_version == "scripted"
    call(server.target, lambda c: c.similar_items("i", k=3))
    assert server.attempts == {"Recommend": 2, "GetSimilarItems": 3}


def test_record_events_is_not_retried(call: Call, scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted({"RecordEvents": [UNAVAILABLE]})
    with pytest.raises(Unavailable) as info:
        call(server.target, lambda c: c.record_events("u", ["i"]))
    assert info.value.message == "scripted UNAVAILABLE #1"
    assert server.attempts == {"RecordEvents": 1}
    # The server answers the next call: the events are recorded once the caller chooses to.
    assert call(server.target, lambda c: c.record_events("u", ["i"])).accepted == 1


def test_retries_stop_after_max_attempts(
    call: Call, scripted: Callable[..., ScriptedServer]
) -> None:
    server = scripted({"Recommend": [UNAVAILABLE] * 10})
    with pytest.raises(Unavailable, match="scripted UNAVAILABLE #3"):
        call(server.target, lambda c: c.recommend("u"))
    assert server.attempts == {"Recommend": 3}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.INTERNAL, RecommenderError),
    ],
)
def test_other_codes_are_typed_errors_and_not_retried(
    call: Call,
    scripted: Callable[..., ScriptedServer],
    code: grpc.StatusCode,
    error: type[RecommenderError],
) -> None:
    server = scripted({"Recommend": [code]})
    with pytest.raises(error) as info:
        call(server.target, lambda c: c.recommend("u"))
    assert type(info.value) is error
    assert info.value.code() == code
    assert info.value.message == f"scripted {code.name} #1"
    assert server.attempts == {"Recommend": 1}


def test_a_call_timeout_overrides_the_client_default(
    call: Call, scripted: Callable[..., ScriptedServer]
) -> None:
    server = scripted({"Recommend": [2.0]})
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        call(server.target, lambda c: c.recommend("u", timeout_s=0.3), timeout_s=30)
    assert time.monotonic() - started < 1.5
