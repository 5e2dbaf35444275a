"""An in-memory copy of the catalog that a serving process reads on every request.

`CatalogView.start()` loads a snapshot, then a follower task reads the change stream
(`XREAD BLOCK`, woken by each write) and re-reads the items each entry names, so the copy
trails a write by about two Redis round trips (measured: tools/catalog_propagation.py, README
"Catalog API"). It resnapshots when the stream was trimmed past its position and after a
Redis outage. Reads never touch Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from recserve.catalog.store import CatalogStore, Change, StreamPosition
from recserve.catalog.types import CatalogItem
from recserve.model.redis_layout import RedisLayout
from recserve.runtime import redis_client
from recserve.runtime.config import RedisConfig
from recserve.runtime.metrics import (
    CATALOG_AVAILABLE_ITEMS,
    CATALOG_ITEMS,
    CATALOG_PROPAGATION,
)

log = logging.getLogger(__name__)

MAX_NEW_ITEMS_TRACKED = 100_000

# Callbacks receive the changed ids and the op: "upsert", "availability", or "snapshot"
# (after a (re)load; the ids are then every catalog item).
ChangeCallback = Callable[[Sequence[str], str], None]

_EMPTY_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})
_EMPTY_NUMERIC: Mapping[str, float] = MappingProxyType({})


class CatalogView:
    def __init__(
        self,
        store: CatalogStore,
        *,
        block_ms: int = 500,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        owns_client: bool = False,
    ):
        self._store = store
        self._owns_client = owns_client
        self._block_ms = block_ms
        self._retry_s = retry_s
        self._clock = clock
        self._attributes: dict[str, Mapping[str, str]] = {}
        self._numeric: dict[str, Mapping[str, float]] = {}
        self._unavailable: frozenset[str] = frozenset()
        # Items that first reached this copy through an upsert after its snapshot, with the
        # upsert's write time: the start of "new item → first answer" (bounded, oldest dropped).
        self._new_items: OrderedDict[str, float] = OrderedDict()
        self._position = StreamPosition()
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()
        # Bumped on every applied change or snapshot: cheap "has anything changed" check.
        self.version = 0
        self.on_change: list[ChangeCallback] = []

    # -- reads (no I/O) ------------------------------------------------------------------------

    def is_available(self, item_id: str) -> bool:
        """False only for items the catalog marks unavailable; unknown items are available."""
        return item_id not in self._unavailable

    def attributes(self, item_id: str) -> Mapping[str, str]:
        return self._attributes.get(item_id, _EMPTY_ATTRIBUTES)

    def numeric(self, item_id: str) -> Mapping[str, float]:
        return self._numeric.get(item_id, _EMPTY_NUMERIC)

    def unavailable_ids(self) -> frozenset[str]:
        return self._unavailable

    def take_new_item_written_at(self, item_id: str) -> float | None:
        """Unix time the item was upserted if it is new since this copy's snapshot and was not
        taken before, else None: the first answer that contains it takes it."""
        return self._new_items.pop(item_id, None)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._attributes

    def __len__(self) -> int:
        return len(self._attributes)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Loads the first snapshot (retrying while Redis is away), then follows in the
        background until `stop()`."""
        while True:
            try:
                await self.resnapshot()
                break
            except Exception as exc:
                log.warning("cannot load the catalog, retrying: %s", exc)
                await asyncio.sleep(self._retry_s)
        self._task = asyncio.create_task(self._follow(), name="catalog-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client:
            await self._store.aclose()

    async def resnapshot(self) -> None:
        snapshot = await self._store.snapshot()
        self._attributes = {i.item_id: MappingProxyType(i.attributes) for i in snapshot.items}
        self._numeric = {i.item_id: MappingProxyType(i.numeric) for i in snapshot.items}
        self._unavailable = frozenset(i.item_id for i in snapshot.items if not i.available)
        self._position = snapshot.position
        self._changed(list(self._attributes), "snapshot")
        self.loaded.set()
        log.info("catalog loaded", extra={"items": len(self._attributes)})

    async def poll_once(self) -> int:
        """Applies the change entries that arrive within one block (or reloads when the stream
        does not continue from this copy's position); returns how many entries were read."""
        changes = await self._store.changes(self._position, block_ms=self._block_ms)
        # Checked after the read, so entries a restarted, empty Redis hands out are never
        # applied on top of the old copy.
        if await self._store.missed_changes(self._position, changes):
            log.warning("catalog change stream does not continue from this copy; reloading")
            await self.resnapshot()
        elif changes:
            await self._apply(changes)
        return len(changes)

    async def _follow(self) -> None:
        # After any failure the copy reloads before it follows again: changes written meanwhile
        # may be gone with a Redis that came back without its data.
        stale = False
        while True:
            try:
                if stale:
                    await self.resnapshot()
                    stale = False
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # stop() cancelled a Redis read whose own timeout fired at the same moment:
                    # the cancel came back as a timeout error; it is still a cancel.
                    raise asyncio.CancelledError from exc
                if not stale:
                    log.warning("catalog follower lost Redis; will reload: %s", exc)
                stale = True
                await asyncio.sleep(self._retry_s)

    async def _apply(self, changes: Sequence[Change]) -> None:
        ids = list(dict.fromkeys(i for c in changes for i in c.ids))
        current = await self._store.get(ids)
        upserted_at = {
            i: c.ts_ms / 1000 for c in reversed(changes) if c.op == "upsert" for i in c.ids
        }
        unavailable = set(self._unavailable)
        for item_id, item in zip(ids, current, strict=True):
            if item is not None and item_id not in self._attributes and item_id in upserted_at:
                self._new_items[item_id] = upserted_at[item_id]
                if len(self._new_items) > MAX_NEW_ITEMS_TRACKED:
                    self._new_items.popitem(last=False)
            self._put(item_id, item, unavailable)
        self._unavailable = frozenset(unavailable)
        self._position = self._position.advanced(changes)
        now = self._clock()
        for change in changes:
            CATALOG_PROPAGATION.observe(max(0.0, now - change.ts_ms / 1000))
            self._changed(change.ids, change.op)

    def _put(self, item_id: str, item: CatalogItem | None, unavailable: set[str]) -> None:
        if item is None:
            self._attributes.pop(item_id, None)
            self._numeric.pop(item_id, None)
            unavailable.discard(item_id)
            return
        self._attributes[item_id] = MappingProxyType(item.attributes)
        self._numeric[item_id] = MappingProxyType(item.numeric)
        if item.available:
            unavailable.discard(item_id)
        else:
            unavailable.add(item_id)

    def _changed(self, ids: Sequence[str], op: str) -> None:
        self.version += 1
        CATALOG_ITEMS.set(len(self._attributes))
        CATALOG_AVAILABLE_ITEMS.set(len(self._attributes) - len(self._unavailable))
        for callback in self.on_change:
            try:
                callback(ids, op)
            except Exception:
                log.exception("catalog on_change callback failed")


def follow(
    config: RedisConfig, layout: RedisLayout | None = None, *, block_ms: int = 500
) -> CatalogView:
    """A CatalogView of the Redis in `config` on a client of its own (closed by `stop()`): its
    blocking read needs a socket timeout above `block_ms`, and must not hold a connection that
    requests wait for. Call `start()` to load and follow."""
    client = redis_client.connect(
        replace(
            config,
            socket_timeout_s=config.socket_timeout_s + block_ms / 1000,
            max_connections=2,
        )
    )
    return CatalogView(CatalogStore(client, layout), block_ms=block_ms, owns_client=True)
