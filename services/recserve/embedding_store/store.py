"""Domain logic of the embedding store (Redis, no gRPC)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aioredis

from recserve.model import QueryConfig, RedisLayout, query_vector
from recserve.model.redis_layout import text
from recserve.runtime.errors import FailedPrecondition, InvalidArgument
from recserve.runtime.ids import require_ids
from recserve.vectors import decode_vector, decode_vectors


@dataclass(frozen=True)
class VersionMeta:
    version: str
    dim: int
    query: QueryConfig


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
    def __init__(self, client: aioredis.Redis, layout: RedisLayout, *, max_history: int):
        self._redis = client
        self._layout = layout
        self._max_history = max_history
        self._meta: dict[str, VersionMeta] = {}

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
        )
        self._meta[version] = meta
        return meta

    async def get_vectors(
        self, meta: VersionMeta, item_ids: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        if not item_ids:
            return {}, []
        unique = list(dict.fromkeys(item_ids))
        raw = await self._redis.mget([self._layout.vector_key(meta.version, i) for i in unique])
        vectors, present = decode_vectors(raw, meta.dim)
        found = {i: v for i, v, ok in zip(unique, vectors, present, strict=True) if ok}
        missing = [i for i, ok in zip(unique, present, strict=True) if not ok]
        return found, missing

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
                events = [text(e) for e in next(replies)]
                events.reverse()  # stored newest first
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
        self,
        meta: VersionMeta,
        user_id: str,
        item_ids: Sequence[str],
        timestamps_ms: Sequence[int],
    ) -> tuple[int, list[str]]:
        require_ids([user_id], "user_id")
        if timestamps_ms and len(timestamps_ms) != len(item_ids):
            raise InvalidArgument(
                f"timestamps_ms has {len(timestamps_ms)} entries for {len(item_ids)} item_ids"
            )
        require_ids(item_ids, "item_ids")
        found, _ = await self.get_vectors(meta, item_ids)
        now_ms = int(time.time() * 1000)
        order = sorted(
            range(len(item_ids)),
            key=lambda i: timestamps_ms[i] or now_ms if timestamps_ms else i,
        )
        accepted = [item_ids[i] for i in order if item_ids[i] in found]
        unknown = list(dict.fromkeys(i for i in item_ids if i not in found))
        if accepted:
            key = self._layout.user_events_key(user_id)
            pipe = self._redis.pipeline(transaction=True)
            pipe.lpush(key, *accepted)
            pipe.ltrim(key, 0, self._max_history - 1)
            await pipe.execute()
        return len(accepted), unknown
