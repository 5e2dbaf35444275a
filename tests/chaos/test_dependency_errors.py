"""A service whose dependency (Redis) is down answers UNAVAILABLE (retryable, "try again or
elsewhere"), never INTERNAL: INTERNAL means a bug, pages someone, and is not retried."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc

from chaos.bundles import read_catalog, versions_in
from recserve.devstack import Stack, StackPorts
from recserve.devstack.stack import wait_serving
from recserve.v1 import embedding_store_pb2 as pb


def test_embedding_store_without_redis_answers_unavailable(
    catalog_bundles: Path, tmp_path: Path
) -> None:
    version = versions_in(catalog_bundles)[0]
    users, items = read_catalog(catalog_bundles / version)
    stack = Stack(tmp_path, catalog_bundles, StackPorts.free())
    try:
        stack.start_redis()
        stack.publish(version)
        stack.start_service("embedding_store", {"RECSERVE_LOG_LEVEL": "WARNING"})
        wait_serving(stack.address("embedding_store"), 60)
        stack.stop_process("redis", signal.SIGKILL)
        with grpc.insecure_channel(stack.address("embedding_store")) as channel:
            calls = [
                (
                    "GetUserStates",
                    pb.GetUserStatesRequest(
                        model_version=version, queries=[pb.UserStateQuery(user_id=users[0])]
                    ),
                    pb.GetUserStatesResponse,
                ),
                (
                    "AppendUserEvents",
                    pb.AppendUserEventsRequest(user_id=users[0], item_ids=items[:1]),
                    pb.AppendUserEventsResponse,
                ),
            ]
            for method, request, response in calls:
                call = channel.unary_unary(
                    f"/recserve.v1.EmbeddingStoreService/{method}",
                    request_serializer=type(request).SerializeToString,
                    response_deserializer=response.FromString,
                )
                try:
                    call(request, timeout=5)
                    raise AssertionError(f"{method} answered without Redis")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, (
                        method,
                        exc.code(),
                        exc.details(),
                    )  # type: ignore[attr-defined]
                    assert "redis" in (exc.details() or "").lower(), exc.details()  # type: ignore[attr-defined]
    finally:
        stack.down()
    log = (stack.run_dir / "logs" / "embedding_store.log").read_text()
    assert "unhandled error" not in log
