"""The catalog in Redis: items outside any model version, and a change stream followers read.

Every write is one Lua script (atomic: other clients see all of it or none of it, and it
XADDs its change entry in the same step), run only after `validate_items` accepted the whole
call, so a rejected call writes nothing. Keys are in `RedisLayout` (one hash tag, so the
scripts work on Redis Cluster too). The scripts need Redis >= 7 (the `#!lua` shebang makes
Redis refuse a script before it starts when memory is full, instead of failing half-way).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from recserve.catalog.types import CatalogItem, CatalogLimits, validate_items
from recserve.model.redis_layout import RedisLayout, text

# Stream entries kept (approximately): a follower further behind than this resnapshots.
STREAM_MAXLEN = 100_000
_BATCH = 1000

# KEYS: ids, unavailable, changes, item key per item. ARGV: ts_ms, maxlen, op, ids JSON, then per
# item: id, available ("1", "0" or "" to keep), number of field/value args, field, value, ...
# An upsert replaces the item's attributes. Returns the number of items created.
_UPSERT_LUA = """#!lua
local ts, pos, created = ARGV[1], 5, 0
for i = 4, #KEYS do
  local id, avail, n = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  pos = pos + 3
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if avail == '' then avail = redis.call('HGET', KEYS[i], 'available') or '1' end
    redis.call('DEL', KEYS[i])
  else
    created = created + 1
    if avail == '' then avail = '1' end
  end
  redis.call('HSET', KEYS[i], 'available', avail, 'updated_at_ms', ts)
  if n > 0 then redis.call('HSET', KEYS[i], unpack(ARGV, pos, pos + n - 1)) end
  pos = pos + n
  redis.call('SADD', KEYS[1], id)
  if avail == '1' then redis.call('SREM', KEYS[2], id) else redis.call('SADD', KEYS[2], id) end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'op', ARGV[3], 'ids', ARGV[4], 'ts_ms', ts)
return created
"""

# KEYS: ids, unavailable, changes, item key per id. ARGV: ts_ms, maxlen, available, id per key.
# Unknown ids become catalog items without attributes (a takedown may precede the upsert).
# Writes, and XADDs, only the items whose availability changes; returns those ids.
_AVAILABILITY_LUA = """#!lua
local ts, avail, changed = ARGV[1], ARGV[3], {}
for i = 4, #KEYS do
  local id = ARGV[i]
  local current = redis.call('HGET', KEYS[i], 'available') or '1'
  local known = redis.call('EXISTS', KEYS[i]) == 1
  if current ~= avail or not known then
    redis.call('HSET', KEYS[i], 'available', avail, 'updated_at_ms', ts)
    redis.call('SADD', KEYS[1], id)
    if avail == '1' then redis.call('SREM', KEYS[2], id) else redis.call('SADD', KEYS[2], id) end
    if current ~= avail then changed[#changed + 1] = id end
  end
end
if #changed > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
    'op', 'availability', 'ids', cjson.encode(changed), 'ts_ms', ts)
end
return changed
"""

# Like _UPSERT_LUA but only for ids not in the catalog yet, never changing an existing item.
# Returns the ids written.
_SEED_LUA = """#!lua
local ts, pos, seeded = ARGV[1], 3, {}
for i = 4, #KEYS do
  local id, n = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'available', '1', 'updated_at_ms', ts)
    if n > 0 then redis.call('HSET', KEYS[i], unpack(ARGV, pos, pos + n - 1)) end
    redis.call('SADD', KEYS[1], id)
    seeded[#seeded + 1] = id
  end
  pos = pos + n
end
if #seeded > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
    'op', 'upsert', 'ids', cjson.encode(seeded), 'ts_ms', ts)
end
return seeded
"""


@dataclass(frozen=True)
class Change:
    """One change stream entry: `op` ("upsert" or "availability") wrote `ids` at `ts_ms`."""

    stream_id: str
    op: str
    ids: list[str]
    ts_ms: int


@dataclass(frozen=True)
class StreamPosition:
    """How far a follower has read: the id of the last entry it applied, and how many entries
    the stream had received up to it (Redis `entries-added`). The count tells entries trimmed
    past the follower apart from a quiet stream (Redis 7.0 does not record trimmed ids)."""

    last_id: str = "0-0"
    entries: int = 0

    def advanced(self, changes: Sequence[Change]) -> StreamPosition:
        if not changes:
            return self
        return StreamPosition(changes[-1].stream_id, self.entries + len(changes))


@dataclass(frozen=True)
class Snapshot:
    """Every catalog item, and the stream position to follow changes from (changes made while
    the snapshot was read come after it, so a follower re-reads those items)."""

    position: StreamPosition
    items: list[CatalogItem]


def _fields(item: CatalogItem) -> list[str]:
    out: list[str] = []
    for name, value in item.attributes.items():
        out += [f"a:{name}", value]
    for name, number in item.numeric.items():
        out += [f"n:{name}", repr(float(number))]
    return out


def _decode_item(item_id: str, raw: Mapping[bytes, bytes]) -> CatalogItem | None:
    if not raw:
        return None
    item = CatalogItem(item_id, available=True)
    for key, value in raw.items():
        name, field = text(key), text(value)
        if name.startswith("a:"):
            item.attributes[name[2:]] = field
        elif name.startswith("n:"):
            item.numeric[name[2:]] = float(field)
        elif name == "available":
            item.available = field == "1"
        elif name == "updated_at_ms":
            item.updated_at_ms = int(field)
    return item


def _stream_id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class CatalogStore:
    def __init__(
        self,
        client: aioredis.Redis,
        layout: RedisLayout | None = None,
        *,
        limits: CatalogLimits | None = None,
        stream_maxlen: int = STREAM_MAXLEN,
        clock: Callable[[], float] = time.time,
    ):
        self._redis = client
        self._layout = layout or RedisLayout()
        self.limits = limits or CatalogLimits()
        self._maxlen = stream_maxlen
        self._clock = clock
        self._upsert = client.register_script(_UPSERT_LUA)
        self._availability = client.register_script(_AVAILABILITY_LUA)
        self._seed = client.register_script(_SEED_LUA)

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _keys(self, ids: Sequence[str]) -> list[str]:
        layout = self._layout
        return [
            layout.catalog_ids_key(),
            layout.catalog_unavailable_key(),
            layout.catalog_changes_key(),
            *(layout.catalog_item_key(i) for i in ids),
        ]

    async def upsert(self, items: Sequence[CatalogItem]) -> tuple[int, int]:
        """Creates or replaces `items` (all or nothing; InvalidArgument before any write);
        returns (created, updated)."""
        validate_items(items, self.limits)
        ids = [i.item_id for i in items]
        args: list[Any] = [self._now_ms(), self._maxlen, "upsert", json.dumps(ids)]
        for item in items:
            fields = _fields(item)
            available = "" if item.available is None else "1" if item.available else "0"
            args += [item.item_id, available, len(fields), *fields]
        created = int(await self._upsert(keys=self._keys(ids), args=args))
        return created, len(items) - created

    async def set_availability(self, ids: Sequence[str], available: bool) -> int:
        """Sets availability (unknown ids become catalog items); returns how many changed."""
        unique = list(dict.fromkeys(ids))
        args = [self._now_ms(), self._maxlen, "1" if available else "0", *unique]
        changed = await self._availability(keys=self._keys(unique), args=args)
        return len(changed)

    async def get(self, ids: Sequence[str]) -> list[CatalogItem | None]:
        out: list[CatalogItem | None] = []
        for lo in range(0, len(ids), _BATCH):
            batch = ids[lo : lo + _BATCH]
            pipe = self._redis.pipeline(transaction=False)
            for item_id in batch:
                pipe.hgetall(self._layout.catalog_item_key(item_id))
            replies = await pipe.execute()
            out += [_decode_item(i, raw) for i, raw in zip(batch, replies, strict=True)]
        return out

    async def seed_missing(self, items: Iterable[CatalogItem]) -> int:
        """Writes items that are not in the catalog yet (available, with their attributes) and
        never touches existing ones; returns how many were written. Items must be valid."""
        seeded = 0
        batch: list[CatalogItem] = []
        for item in items:
            batch.append(item)
            if len(batch) == _BATCH:
                seeded += await self._seed_batch(batch)
                batch = []
        if batch:
            seeded += await self._seed_batch(batch)
        return seeded

    async def _seed_batch(self, items: Sequence[CatalogItem]) -> int:
        args: list[Any] = [self._now_ms(), self._maxlen]
        for item in items:
            fields = _fields(item)
            args += [item.item_id, len(fields), *fields]
        seeded = await self._seed(keys=self._keys([i.item_id for i in items]), args=args)
        return len(seeded)

    async def snapshot(self) -> Snapshot:
        position = await self.position()
        ids = [text(raw) async for raw in self._redis.sscan_iter(self._layout.catalog_ids_key())]
        items = [item for item in await self.get(ids) if item is not None]
        return Snapshot(position, items)

    async def position(self) -> StreamPosition:
        """The newest change stream entry (StreamPosition() while there is none)."""
        info = await self._stream_info()
        if info is None:
            return StreamPosition()
        return StreamPosition(text(info["last-generated-id"]), int(info["entries-added"]))

    async def _stream_info(self) -> dict[str, Any] | None:
        key = self._layout.catalog_changes_key()
        if not await self._redis.exists(key):
            return None
        info: dict[str, Any] = await self._redis.xinfo_stream(key)
        return info

    async def changes(
        self, after: StreamPosition, *, block_ms: int, count: int = _BATCH
    ) -> list[Change]:
        """Change entries after `after`, waiting up to `block_ms` for the first one. The
        client's socket timeout must exceed `block_ms`."""
        reply = cast(
            "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
            await self._redis.xread(
                {self._layout.catalog_changes_key(): after.last_id}, count=count, block=block_ms
            ),
        )
        out: list[Change] = []
        for _stream, entries in reply or ():
            for stream_id, fields in entries:
                values = {text(k): text(v) for k, v in fields.items()}
                out.append(
                    Change(
                        stream_id=text(stream_id),
                        op=values.get("op", ""),
                        ids=[str(i) for i in json.loads(values.get("ids", "[]"))],
                        ts_ms=int(values.get("ts_ms", 0)),
                    )
                )
        return out

    async def missed_changes(self, position: StreamPosition, read: Sequence[Change] = ()) -> bool:
        """True when the stream does not continue from `position` through the entries `read`
        just after it: entries after `position` were trimmed away, or the stream is younger
        than what was read (a Redis that came back without its data). A follower must then
        resnapshot."""
        info = await self._stream_info()
        through = position.advanced(read)
        if info is None:
            return through.entries > 0
        added, length = int(info["entries-added"]), int(info["length"])
        last = text(info["last-generated-id"])
        return (
            added - length > position.entries
            or added < through.entries
            or _stream_id_key(last) < _stream_id_key(through.last_id)
        )
