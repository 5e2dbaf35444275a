"""asyncio client: the same API as `RecommenderClient`, each call awaitable. Create and use it
inside one running event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from recserve.client.base import ClientBase
from recserve.client.errors import error_for
from recserve.client.results import Recommendations, RecordedEvents

ResultT = TypeVar("ResultT")


class AsyncRecommenderClient(ClientBase[Awaitable[Recommendations], Awaitable[RecordedEvents]]):
    def _open_channel(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None,
        options: list[tuple[str, Any]],
    ) -> grpc.aio.Channel:
        if credentials is None:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, credentials, options=options)

    async def _complete(
        self, start: Callable[[], Any], convert: Callable[[Any], ResultT]
    ) -> ResultT:
        try:
            response = await start()
        except grpc.aio.AioRpcError as exc:
            raise error_for(exc) from None
        return convert(response)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Returns once a replica reports SERVING; TimeoutError after `timeout_s`."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"{self.options.target} not ready after {timeout_s} s") from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRecommenderClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
