"""The client API, defined once for the sync and the asyncio client.

Each method builds its request and hands the stub call to `_complete`, which the sync client
runs at once (returning the result) and the asyncio client wraps in a coroutine (returning an
awaitable):
`ClientBase[Recommendations, RecordedEvents]` and
`ClientBase[Awaitable[Recommendations], Awaitable[RecordedEvents]]` give callers exact types.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import grpc

from recserve.client.options import DEFAULT_MAX_MESSAGE_BYTES, ClientOptions, resolve_target
from recserve.client.results import from_recommend, from_record, from_similar
from recserve.v1 import recommender_pb2 as pb
from recserve.v1 import types_pb2
from recserve.v1.recommender_pb2_grpc import RecommenderServiceStub

RecommendationsT = TypeVar("RecommendationsT")
RecordedT = TypeVar("RecordedT")


class ClientBase(ABC, Generic[RecommendationsT, RecordedT]):
    """One channel to `target` (default $RECSERVE_TARGET), with the options of
    `recserve.client.options.ClientOptions`; `timeout_s` on a call overrides the default."""

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        tls: bool = False,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        timeout_s: float = 1.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel_options: Sequence[tuple[str, Any]] = (),
    ):
        self.options = ClientOptions(
            resolve_target(target),
            token=token,
            tls=tls,
            tls_ca_file=tls_ca_file,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            timeout_s=timeout_s,
            max_message_bytes=max_message_bytes,
            channel_options=channel_options,
        )
        self._metadata = self.options.metadata()
        self._channel = self._open_channel(
            self.options.target, self.options.credentials(), self.options.channel_args()
        )
        self._stub = RecommenderServiceStub(self._channel)

    @abstractmethod
    def _open_channel(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None,
        options: list[tuple[str, Any]],
    ) -> Any: ...

    @abstractmethod
    def _complete(self, start: Callable[[], Any], convert: Callable[[Any], Any]) -> Any:
        """Runs `start()` (a stub call) to its response and returns `convert(response)`: at
        once (sync) or as a coroutine (async). A failed call raises
        `recserve.client.errors.RecommenderError`."""

    def _invoke(
        self, method: Any, request: Any, convert: Callable[[Any], Any], timeout_s: float | None
    ) -> Any:
        timeout = self.options.timeout(timeout_s)
        return self._complete(
            lambda: method(request, timeout=timeout, metadata=self._metadata), convert
        )

    def recommend(
        self,
        user_id: str = "",
        *,
        recent_item_ids: Sequence[str] = (),
        k: int = 10,
        context: Mapping[str, str] | None = None,
        exclude_item_ids: Sequence[str] = (),
        filters: Sequence[types_pb2.ItemFilter] = (),
        include_stage_scores: bool = False,
        timeout_s: float | None = None,
    ) -> RecommendationsT:
        request = pb.RecommendRequest(
            user_id=user_id,
            recent_item_ids=recent_item_ids,
            context=context or {},
            k=k,
            exclude_item_ids=exclude_item_ids,
            filters=filters,
            include_stage_scores=include_stage_scores,
        )
        return self._invoke(self._stub.Recommend, request, from_recommend, timeout_s)

    def similar_items(
        self,
        item_id: str,
        *,
        k: int = 10,
        exclude_item_ids: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> RecommendationsT:
        request = pb.GetSimilarItemsRequest(item_id=item_id, k=k, exclude_item_ids=exclude_item_ids)
        return self._invoke(self._stub.GetSimilarItems, request, from_similar, timeout_s)

    def record_events(
        self,
        user_id: str,
        item_ids: Sequence[str],
        *,
        event_type: str = "",
        event_ids: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> RecordedT:
        """Appends the events (stamped now, of `event_type`; "" is the default type, always used
        as history). Never retried by the channel. Without `event_ids`, on `Unavailable` they may
        or may not have been stored and calling again may store them twice; with one id per
        item (chosen by the caller, e.g. a UUID), calling again with the same ids stores each
        event once, whichever gateway replica answers."""
        if event_ids is not None and len(event_ids) != len(item_ids):
            raise ValueError(f"{len(event_ids)} event_ids for {len(item_ids)} item_ids")
        ids = event_ids if event_ids is not None else [""] * len(item_ids)
        now_ms = int(time.time() * 1000)
        request = pb.RecordEventsRequest(
            user_id=user_id,
            events=[
                types_pb2.Event(
                    item_id=i, timestamp_ms=now_ms, event_type=event_type, event_id=event_id
                )
                for i, event_id in zip(item_ids, ids, strict=True)
            ],
        )
        return self._invoke(self._stub.RecordEvents, request, from_record, timeout_s)
