"""EmbeddingStoreService: protobuf ⇄ domain."""

from __future__ import annotations

from recserve.embedding_store.store import EmbeddingStore, UserStateQuery
from recserve.model.events import UserEvent
from recserve.runtime.errors import InvalidArgument, require_at_most
from recserve.runtime.ids import require_ids
from recserve.runtime.metrics import QUERIES
from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import embedding_store_pb2 as pb
from recserve.vectors import encode_vector

SERVICE = pb.DESCRIPTOR.services_by_name["EmbeddingStoreService"]


class EmbeddingStoreServicer:
    def __init__(self, store: EmbeddingStore, *, max_batch_items: int):
        self._store = store
        self._max_batch_items = max_batch_items

    async def get_item_vectors(
        self, request: pb.GetItemVectorsRequest, _: RpcContext
    ) -> pb.GetItemVectorsResponse:
        require_at_most(len(request.item_ids), self._max_batch_items, "item_ids")
        require_ids(request.item_ids, "item_ids")
        meta = await self._store.meta(request.model_version)
        found, missing = await self._store.get_vectors(meta, list(request.item_ids))
        return pb.GetItemVectorsResponse(
            model_version=meta.version,
            vectors=[
                pb.ItemVector(item_id=i, vector_f32=encode_vector(v)) for i, v in found.items()
            ],
            missing_item_ids=missing,
        )

    async def upsert_item_vectors(
        self, request: pb.UpsertItemVectorsRequest, _: RpcContext
    ) -> pb.UpsertItemVectorsResponse:
        require_at_most(len(request.vectors), self._max_batch_items, "vectors")
        meta = await self._store.meta(request.model_version)
        count = await self._store.upsert_vectors(
            meta, [(v.item_id, v.vector_f32) for v in request.vectors]
        )
        return pb.UpsertItemVectorsResponse(upserted=count)

    async def delete_item_vectors(
        self, request: pb.DeleteItemVectorsRequest, _: RpcContext
    ) -> pb.DeleteItemVectorsResponse:
        require_at_most(len(request.item_ids), self._max_batch_items, "item_ids")
        meta = await self._store.meta(request.model_version)
        return pb.DeleteItemVectorsResponse(
            deleted=await self._store.delete_vectors(meta, list(request.item_ids))
        )

    async def get_user_states(
        self, request: pb.GetUserStatesRequest, _: RpcContext
    ) -> pb.GetUserStatesResponse:
        QUERIES.inc(len(request.queries))
        require_at_most(len(request.queries), self._max_batch_items, "queries")
        require_at_most(
            sum(len(q.recent_item_ids) for q in request.queries),
            self._max_batch_items,
            "recent_item_ids",
        )
        for query in request.queries:
            if not query.user_id and not query.recent_item_ids:
                raise InvalidArgument("each query needs a user_id or recent_item_ids")
            require_ids(query.recent_item_ids, "recent_item_ids")
        meta = await self._store.meta(request.model_version)
        states = await self._store.user_states(
            meta, [UserStateQuery(q.user_id, list(q.recent_item_ids)) for q in request.queries]
        )
        return pb.GetUserStatesResponse(
            model_version=meta.version,
            states=[
                pb.UserState(
                    history_item_ids=s.history,
                    features=s.features,
                    query_vector_f32=b""
                    if s.query_vector is None
                    else encode_vector(s.query_vector),
                    unknown_item_ids=s.unknown_item_ids,
                )
                for s in states
            ],
        )

    async def append_user_events(
        self, request: pb.AppendUserEventsRequest, _: RpcContext
    ) -> pb.AppendUserEventsResponse:
        require_at_most(len(request.item_ids), self._max_batch_items, "item_ids")
        n = len(request.item_ids)
        # Parallel to item_ids; an empty list means every event has the field's default.
        timestamps = list(request.timestamps_ms) or [0] * n
        types = list(request.event_types) or [""] * n
        ids = list(request.event_ids) or [""] * n
        for name, values in (
            ("timestamps_ms", timestamps),
            ("event_types", types),
            ("event_ids", ids),
        ):
            if len(values) != n:
                raise InvalidArgument(
                    f"{name} has {len(values)} entries for {n} item_ids", field=name
                )
        events = [
            UserEvent(*event)
            for event in zip(request.item_ids, timestamps, types, ids, strict=True)
        ]
        meta = await self._store.meta("")
        result = await self._store.append_events(meta, request.user_id, events)
        return pb.AppendUserEventsResponse(
            accepted=result.accepted,
            unknown_item_ids=result.unknown_item_ids,
            duplicates=result.duplicates,
        )

    def service(self) -> Service:
        return Service(
            SERVICE,
            [
                Method("GetItemVectors", pb.GetItemVectorsRequest, self.get_item_vectors),
                Method("UpsertItemVectors", pb.UpsertItemVectorsRequest, self.upsert_item_vectors),
                Method("DeleteItemVectors", pb.DeleteItemVectorsRequest, self.delete_item_vectors),
                Method("GetUserStates", pb.GetUserStatesRequest, self.get_user_states),
                Method("AppendUserEvents", pb.AppendUserEventsRequest, self.append_user_events),
            ],
        )
