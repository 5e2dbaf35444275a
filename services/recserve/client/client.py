"""Blocking client: one channel per client, safe to share across threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from recserve.client.base import ClientBase
from recserve.client.errors import error_for
from recserve.client.results import Recommendations, RecordedEvents

ResultT = TypeVar("ResultT")


class RecommenderClient(ClientBase[Recommendations, RecordedEvents]):
    def _open_channel(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None,
        options: list[tuple[str, Any]],
    ) -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, credentials, options=options)

    def _complete(self, start: Callable[[], Any], convert: Callable[[Any], ResultT]) -> ResultT:
        try:
            response = start()
        except grpc.RpcError as exc:
            raise error_for(exc) from None
        return convert(response)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Returns once a replica reports SERVING; TimeoutError after `timeout_s`."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise TimeoutError(f"{self.options.target} not ready after {timeout_s} s") from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
