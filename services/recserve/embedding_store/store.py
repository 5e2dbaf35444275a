"""Domain logic of the embedding store (Redis, no gRPC)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import redis.asyncio as aioredis

from recserve.catalog.vectors import ColdInputVectors
from recserve.model import QueryConfig, RedisLayout, query_vector
from recserve.model.events import (
    AppendResult,
    UserEvent,
    decode_entry,
    encode_entry,
    history_types,
    validate_events,
)
from recserve.model.redis_layout import text
from recserve.runtime.errors import FailedPrecondition
from recserve.runtime.ids import require_ids
from recserve.vectors import decode_vector, decode_vectors

# Appends one user's events atomically: an event with an id is stored only when SET NX of its
# id key succeeds (the id is then remembered for ARGV[2] seconds), so a retry sent to any
# gateway replica is stored once. All keys share the user's hash tag (one Cluster slot).
# KEYS: events list, then one id key per event that has an id, in event order.
# ARGV: max_history, ttl_s, then per event oldest first: entry, "1" when it has an id else "0".
# Returns the number of events not stored because their id was already stored.
_APPEND_EVENTS_LUA = """
local stored, duplicates, next_key = {}, 0, 2
for i = 3, #ARGV, 2 do
  local fresh = true
  if ARGV[i + 1] == '1' then
    fresh = redis.call('SET', KEYS[next_key], '1', 'NX', 'EX', ARGV[2])
    next_key = next_key + 1
  end
  if fresh then stored[#stored + 1] = ARGV[i] else duplicates = duplicates + 1 end
end
-- LPUSH in slices: unpack is bounded by Lua's C stack.
for lo = 1, #stored, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(stored, lo, math.min(lo + 999, #stored)))
end
if #stored > 0 then redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1) end
return duplicates
"""
# UserEvent attribute -> the AppendUserEventsRequest field that carries it (error messages).
_COLUMNS = {
    "item_id": "item_ids",
    "timestamp_ms": "timestamps_ms",
    "event_type": "event_types",
    "event_id": "event_ids",
}


@dataclass(frozen=True)
class VersionMeta:
    version: str
    dim: int
    query: QueryConfig
    # Stored events of these types are history; others are kept but not used.
    history_types: frozenset[str]


@dataclass(frozen=True)
class UserStateQuery:
    user_id: str
    recent_item_ids: Sequence[str]


@dataclass(frozen=True)
class UserStateResult:
    # Known items, oldest first: stored history then the request's recent items.
    history: list[str]
    features: dict[str, str]
    # None on cold start (no known item with a vector).
    query_vector: np.ndarray | None
    unknown_item_ids: list[str]


class EmbeddingStore:
    def __init__(
        self,
        client: aioredis.Redis,
        layout: RedisLayout,
        *,
        max_history: int,
        history_event_types: frozenset[str] | None = None,
        event_id_ttl_s: int = 86_400,
    ):
        self._redis = client
        self._layout = layout
        self._max_history = max_history
        self._history_event_types = history_event_types
        self._event_id_ttl_s = event_id_ttl_s
        self._append = client.register_script(_APPEND_EVENTS_LUA)
        self._meta: dict[str, VersionMeta] = {}
        self._cold = ColdInputVectors(client, layout)

    async def active_version(self) -> str | None:
        return text(await self._redis.get(self._layout.active_key()))

    async def meta(self, version: str) -> VersionMeta:
        """Version metadata; `version` empty means the active one. Cached: versions are immutable."""
        if not version:
            active = await self.active_version()
            if active is None:
                raise FailedPrecondition("no model version has been published")
            version = active
        cached = self._meta.get(version)
        if cached is not None:
            return cached
        fields = await self._redis.hgetall(self._layout.meta_key(version))
        if not fields:
            raise FailedPrecondition(f"model version {version!r} is not published")
        meta = VersionMeta(
            version=version,
            dim=int(fields[b"dim"]),
            query=QueryConfig.from_dict(json.loads(fields[b"query"])),
            # Versions published before event types were recorded: the default type only.
            history_types=history_types(
                json.loads(fields.get(b"event_types", b"[]")), self._history_event_types
            ),
        )
        self._meta[version] = meta
        return meta

    async def get_vectors(
        self, meta: VersionMeta, item_ids: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Vectors of the version's items and of cold-start catalog items; ids of neither."""
        found, missing, _ = await self.lookup(meta, item_ids)
        return found, missing

    async def lookup(
        self, meta: VersionMeta, item_ids: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], list[str], set[str]]:
        """`get_vectors` plus which of the found items are cold-start ones."""
        if not item_ids:
            return {}, [], set()
        unique = list(dict.fromkeys(item_ids))
        raw = await self._redis.mget([self._layout.vector_key(meta.version, i) for i in unique])
        vectors, present = decode_vectors(raw, meta.dim)
        found = {i: v for i, v, ok in zip(unique, vectors, present, strict=True) if ok}
        missing = [i for i, ok in zip(unique, present, strict=True) if not ok]
        cold = await self._cold.vectors(meta.version, meta.dim, missing)
        found.update(cold)
        return found, [i for i in missing if i not in cold], set(cold)

    async def upsert_vectors(self, meta: VersionMeta, vectors: Sequence[tuple[str, bytes]]) -> int:
        require_ids((item_id for item_id, _ in vectors), "item_id")
        for item_id, blob in vectors:
            decode_vector(blob, meta.dim, f"vector of item {item_id!r}")
        if vectors:
            await self._redis.mset(
                {self._layout.vector_key(meta.version, i): blob for i, blob in vectors}
            )
        return len(vectors)

    async def delete_vectors(self, meta: VersionMeta, item_ids: Sequence[str]) -> int:
        require_ids(item_ids, "item_ids")
        if not item_ids:
            return 0
        return int(
            await self._redis.delete(*(self._layout.vector_key(meta.version, i) for i in item_ids))
        )

    async def user_states(
        self, meta: VersionMeta, queries: Sequence[UserStateQuery]
    ) -> list[UserStateResult]:
        # One round trip for every user's events and features, one MGET for every vector needed.
        pipe = self._redis.pipeline(transaction=False)
        for query in queries:
            if query.user_id:
                pipe.lrange(self._layout.user_events_key(query.user_id), 0, self._max_history - 1)
                pipe.hgetall(self._layout.user_features_key(query.user_id))
        replies = iter(await pipe.execute()) if any(q.user_id for q in queries) else iter(())
        histories: list[list[str]] = []
        features: list[dict[str, str]] = []
        for query in queries:
            if query.user_id:
                entries = (decode_entry(raw) for raw in reversed(next(replies)))  # newest first
                events = [item for item, kind in entries if kind in meta.history_types]
                feats = {text(k): text(v) for k, v in next(replies).items()}
            else:
                events, feats = [], {}
            histories.append(events)
            features.append(feats)

        wanted: list[str] = []
        for query, history in zip(queries, histories, strict=True):
            wanted.extend(history[-meta.query.history_length :])
            wanted.extend(query.recent_item_ids)
        vectors, _ = await self.get_vectors(meta, wanted)

        results = []
        for query, history, feats in zip(queries, histories, features, strict=True):
            unknown = [i for i in query.recent_item_ids if i not in vectors]
            known_recent = [i for i in query.recent_item_ids if i in vectors]
            full = history + known_recent
            tail = [vectors[i] for i in full[-meta.query.history_length :] if i in vectors]
            qv = query_vector(np.stack(tail), meta.query) if tail else None
            results.append(UserStateResult(full, feats, qv, unknown))
        return results

    async def append_events(
        self, meta: VersionMeta, user_id: str, events: Sequence[UserEvent]
    ) -> AppendResult:
        """Stores the events of known items, oldest first (timestamp 0 = now), in one script:
        all of them or none."""
        require_ids([user_id], "user_id")
        validate_events(events, lambda index, attribute: f"{_COLUMNS[attribute]}[{index}]")
        found, _, cold = await self.lookup(meta, [e.item_id for e in events])
        now_ms = int(time.time() * 1000)
        known = sorted(
            (e for e in events if e.item_id in found), key=lambda e: e.timestamp_ms or now_ms
        )
        unknown = list(dict.fromkeys(e.item_id for e in events if e.item_id not in found))
        duplicates = 0
        if known:
            keys = [self._layout.user_events_key(user_id)]
            args: list[str | bytes | int] = [self._max_history, self._event_id_ttl_s]
            for event in known:
                args += [encode_entry(event.item_id, event.event_type), int(bool(event.event_id))]
                if event.event_id:
                    keys.append(self._layout.user_event_id_key(user_id, event.event_id))
            duplicates = int(await self._append(keys=keys, args=args))
            await self._refine_cold(meta, user_id, cold & {e.item_id for e in known}, now_ms)
        return AppendResult(len(known), unknown, duplicates)

    async def _refine_cold(
        self, meta: VersionMeta, user_id: str, cold: set[str], now_ms: int
    ) -> None:
        """Counts the trained items of the user's recent history as neighbours of each
        cold-start item just stored (recserve.catalog.vectors, refinement)."""
        if not cold:
            return
        depth = meta.query.history_length + len(cold)
        # The client keeps bytes (decode_responses=False).
        raw = cast(
            "list[bytes]",
            await self._redis.lrange(self._layout.user_events_key(user_id), 0, depth - 1),
        )
        entries = (decode_entry(r) for r in raw)
        recent = [item for item, kind in entries if kind in meta.history_types]
        found, _, also_cold = await self.lookup(meta, recent)
        neighbours = [i for i in recent if i in found and i not in also_cold]
        for item_id in sorted(cold):
            if neighbours:
                await self._cold.record(item_id, neighbours, now_ms)
