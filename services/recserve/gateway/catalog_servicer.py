"""CatalogService (on the gateway's port): protobuf ⇄ `recserve.catalog`.

Writes go to Redis through `CatalogStore` (validated, atomic per call); every gateway replica's
`CatalogView` follows them. GetItems reads Redis, so a caller reads its own writes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from recserve.catalog import CatalogItem, CatalogStore
from recserve.catalog.vectors import vector_sources
from recserve.model import RedisLayout
from recserve.runtime.errors import InvalidArgument, require_at_most
from recserve.runtime.ids import require_ids
from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import catalog_pb2 as pb


def _from_proto(item: pb.CatalogItem) -> CatalogItem:
    # vector_source and updated_at_ms are read only: what a caller sends there is ignored.
    return CatalogItem(
        item_id=item.item_id,
        attributes=dict(item.attributes),
        numeric=dict(item.numeric_attributes),
        available=item.available if item.HasField("available") else None,
    )


def _require_ids(ids: Sequence[str], limit: int, what: str) -> None:
    if not ids:
        raise InvalidArgument(f"{what} must not be empty", field=what)
    require_at_most(len(ids), limit, what)
    require_ids(ids, what)


def write_tokens(auth_token: str | None, admin_token: str | None) -> tuple[str, ...] | None:
    """Bearer tokens catalog writes accept: the admin token when set; none at all when only the
    read token is set (auth on, no admin credential configured); None (open) without auth."""
    if admin_token is not None:
        return (admin_token,)
    return () if auth_token is not None else None


def read_tokens(auth_token: str | None, admin_token: str | None) -> tuple[str, ...] | None:
    """GetItems follows RecommenderService: open without RECSERVE_AUTH_TOKEN, else that token
    (or the admin one)."""
    if auth_token is None:
        return None
    return (auth_token, admin_token) if admin_token is not None else (auth_token,)


class CatalogServicer:
    def __init__(
        self,
        store: CatalogStore,
        client: aioredis.Redis,
        layout: RedisLayout,
        active_version: Callable[[], str | None],
        *,
        auth_token: str | None,
        admin_token: str | None,
    ):
        self._store = store
        self._redis = client
        self._layout = layout
        self._active_version = active_version
        self._auth_token = auth_token
        self._admin_token = admin_token

    async def upsert_items(
        self, request: pb.UpsertItemsRequest, context: RpcContext
    ) -> pb.UpsertItemsResponse:
        created, updated = await self._store.upsert([_from_proto(i) for i in request.items])
        return pb.UpsertItemsResponse(created=created, updated=updated)

    async def set_availability(
        self, request: pb.SetAvailabilityRequest, context: RpcContext
    ) -> pb.SetAvailabilityResponse:
        _require_ids(request.item_ids, self._store.limits.max_items_per_call, "item_ids")
        changed = await self._store.set_availability(list(request.item_ids), request.available)
        return pb.SetAvailabilityResponse(changed=changed)

    async def get_items(
        self, request: pb.GetItemsRequest, context: RpcContext
    ) -> pb.GetItemsResponse:
        ids = list(dict.fromkeys(request.item_ids))
        _require_ids(ids, self._store.limits.max_items_per_call, "item_ids")
        items = await self._store.get(ids)
        version = self._active_version()
        sources: list[int] = [pb.VECTOR_SOURCE_NONE] * len(ids)
        if version is not None:
            attributes = [i.attributes if i is not None else {} for i in items]
            found = await vector_sources(self._redis, self._layout, version, ids, attributes)
            sources = [int(s) for s in found]
        response = pb.GetItemsResponse()
        for item_id, stored, source in zip(ids, items, sources, strict=True):
            if stored is None and source != pb.VECTOR_SOURCE_TRAINED:
                response.unknown_item_ids.append(item_id)
                continue
            # A trained item the catalog does not hold (published before the catalog existed)
            # is served as available, without catalog attributes.
            item = stored or CatalogItem(item_id, available=True)
            response.items.append(
                pb.CatalogItem(
                    item_id=item_id,
                    attributes=item.attributes,
                    numeric_attributes=item.numeric,
                    available=bool(item.available),
                    vector_source=source,  # type: ignore[arg-type]
                    updated_at_ms=item.updated_at_ms,
                )
            )
        return response

    def service(self) -> Service:
        writes = write_tokens(self._auth_token, self._admin_token)
        reads = read_tokens(self._auth_token, self._admin_token)
        return Service(
            pb.DESCRIPTOR.services_by_name["CatalogService"],
            [
                Method("UpsertItems", pb.UpsertItemsRequest, self.upsert_items, writes),
                Method("SetAvailability", pb.SetAvailabilityRequest, self.set_availability, writes),
                Method("GetItems", pb.GetItemsRequest, self.get_items, reads),
            ],
        )
