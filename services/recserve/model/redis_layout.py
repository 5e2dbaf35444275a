"""Redis keys of recserve and the publish step that makes a bundle version live.

Keys (``{...}`` are Redis Cluster hash tags, so one version's vectors share a slot and MGET works):

    recserve:active                         STRING  active version
    recserve:versions                       ZSET    published versions, score = publish time
    recserve:{v<version>}:vec:<item_id>     STRING  float32 little-endian input vector
    recserve:{v<version>}:meta              HASH    version, dim, count, dtype, query (JSON),
                                                    popular (JSON item ids), num_candidates,
                                                    scoring_vectors, event_types (JSON: the
                                                    event types training used), published_at
    recserve:{v<version>}:item_features     HASH    item id -> raw features (JSON)
    recserve:{v<version>}:attribute_means   HASH    "name=value" -> float32 mean input vector
    recserve:user:{<user_id>}:events        LIST    events, newest first (capped): item ids,
                                                    typed ones framed (recserve.model.events)
    recserve:user:{<user_id>}:event_id:<id> STRING  an event id already stored (TTL
                                                    RECSERVE_EVENT_ID_TTL_S); same slot as events
    recserve:user:{<user_id>}:features      HASH    raw user features (age, gender, ...)
    recserve:{catalog}:item:<item_id>       HASH    a:<name> attribute, n:<name> number (repr),
                                                    available "1"/"0", updated_at_ms
    recserve:{catalog}:ids                  SET     every catalog item id
    recserve:{catalog}:unavailable          SET     ids with available "0"
    recserve:{catalog}:changes              STREAM  one entry per catalog write: op, ids (JSON), ts_ms
    recserve:{catalog}:cooc:<item_id>       HASH    cold-start item's neighbour id -> count
    recserve:{catalog}:refined              ZSET    cold-start item ids, score = last neighbour ms

A version's keys are never modified after publish; the only switch is one SET of
``recserve:active`` after every key of the new version is written, so a reader that reads the
pointer once per request sees the old model or the new one, never a mix. User state is not
versioned, and publish seeds it only for users that have no events list yet: events recorded
online are never overwritten by older training data. The catalog (`recserve.catalog`) is not
versioned either: one hash tag, so a catalog write is one atomic script even on Redis Cluster,
and no version's SCAN pattern matches it, so version GC never deletes it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast, overload

import numpy as np

from recserve.model.attribute_means import means_field
from recserve.model.bundle import Bundle
from recserve.vectors import VECTOR_DTYPE, decode_vectors, encode_vectors

if TYPE_CHECKING:
    import redis
    from redis.typing import EncodableT

# Seeds one user atomically, only if they have no events list yet (online events win).
# KEYS: events, features. ARGV: n_events, events newest first..., feature, value, ...
_SEED_USER_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[1])
if n > 0 then redis.call('RPUSH', KEYS[1], unpack(ARGV, 2, n + 1)) end
if #ARGV > n + 1 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], unpack(ARGV, n + 2, #ARGV))
end
return 1
"""


@dataclass(frozen=True)
class RedisLayout:
    prefix: str = "recserve"
    # Matches the embedding store's RECSERVE_MAX_HISTORY default: seeded history is also what
    # serving excludes as already seen (MovieLens-100K users have up to 737 events).
    max_user_events: int = 1000

    def active_key(self) -> str:
        return f"{self.prefix}:active"

    def versions_key(self) -> str:
        return f"{self.prefix}:versions"

    def _version_tag(self, version: str) -> str:
        return f"{self.prefix}:{{v{version}}}"

    def vector_key(self, version: str, item_id: str) -> str:
        return f"{self._version_tag(version)}:vec:{item_id}"

    def meta_key(self, version: str) -> str:
        return f"{self._version_tag(version)}:meta"

    def item_features_key(self, version: str) -> str:
        return f"{self._version_tag(version)}:item_features"

    def attribute_means_key(self, version: str) -> str:
        return f"{self._version_tag(version)}:attribute_means"

    def version_pattern(self, version: str) -> str:
        """SCAN pattern matching every key of one version."""
        return f"{_glob_escape(self._version_tag(version))}:*"

    def user_events_key(self, user_id: str) -> str:
        return f"{self.prefix}:user:{{{user_id}}}:events"

    def user_event_id_key(self, user_id: str, event_id: str) -> str:
        return f"{self.prefix}:user:{{{user_id}}}:event_id:{event_id}"

    def user_features_key(self, user_id: str) -> str:
        return f"{self.prefix}:user:{{{user_id}}}:features"

    def catalog_item_key(self, item_id: str) -> str:
        return f"{self.prefix}:{{catalog}}:item:{item_id}"

    def catalog_ids_key(self) -> str:
        return f"{self.prefix}:{{catalog}}:ids"

    def catalog_unavailable_key(self) -> str:
        return f"{self.prefix}:{{catalog}}:unavailable"

    def catalog_changes_key(self) -> str:
        return f"{self.prefix}:{{catalog}}:changes"

    def cold_neighbours_key(self, item_id: str) -> str:
        return f"{self.prefix}:{{catalog}}:cooc:{item_id}"

    def cold_refined_key(self) -> str:
        return f"{self.prefix}:{{catalog}}:refined"


def _glob_escape(pattern: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", pattern)


@overload
def text(raw: bytes | str) -> str: ...
@overload
def text(raw: None) -> None: ...
def text(raw: bytes | str | None) -> str | None:
    """A Redis reply as str: the clients keep bytes (decode_responses=False) because vectors are
    binary."""
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else raw


def active_version(client: redis.Redis, layout: RedisLayout | None = None) -> str | None:
    layout = layout or RedisLayout()
    return text(client.get(layout.active_key()))


def read_vectors(
    client: redis.Redis,
    version: str,
    item_ids: Sequence[str],
    dim: int,
    layout: RedisLayout | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    layout = layout or RedisLayout()
    if not item_ids:
        return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=bool)
    return decode_vectors(client.mget([layout.vector_key(version, i) for i in item_ids]), dim)


@dataclass
class PublishResult:
    version: str
    previous: str | None
    vectors: int
    users_seeded: int
    users_skipped: int
    deleted_versions: list[str] = field(default_factory=list)
    seconds: float = 0.0


def publish_bundle(
    client: redis.Redis,
    bundle: Bundle,
    *,
    retention: int = 2,
    user_histories: Mapping[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]] | None = None,
    user_features: Mapping[str, Mapping[str, str]] | None = None,
    layout: RedisLayout | None = None,
    batch_size: int = 1000,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> PublishResult:
    """Writes the bundle's vectors, item features and meta under its version, seeds user state
    (histories oldest first; only users without an events list), flips ``active``, then deletes
    versions beyond `retention` (the active one is always kept).

    The bundle must be loaded with the "vectors" and "ranker" parts (vectors and item features).
    Redis must not evict keys (``maxmemory-policy noeviction`` or ``volatile-*``): an evicted
    vector would make that item unknown for its version.
    """
    if retention < 1:
        raise ValueError("retention must be >= 1")
    layout = layout or RedisLayout()
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    version = bundle.version
    vectors = bundle.input_vectors
    item_ids = bundle.item_ids
    previous = active_version(client, layout)

    blobs = encode_vectors(vectors)
    pipe = client.pipeline(transaction=False)
    for lo in range(0, len(item_ids), batch_size):
        hi = min(lo + batch_size, len(item_ids))
        pipe.mset({layout.vector_key(version, item_ids[i]): blobs[i] for i in range(lo, hi)})
        features = bundle.item_features[lo:hi]
        pipe.hset(
            layout.item_features_key(version),
            mapping={
                item_ids[lo + j]: json.dumps(f, ensure_ascii=False) for j, f in enumerate(features)
            },
        )
        pipe.execute()
        say(f"publish {version}: {hi}/{len(item_ids)} vectors")

    # Read a sample back before switching: a full or evicting Redis fails here, not in serving.
    sample = sorted({0, len(item_ids) // 2, len(item_ids) - 1})
    got, found = read_vectors(client, version, [item_ids[i] for i in sample], bundle.dim, layout)
    if not found.all() or not np.array_equal(got, vectors[sample]):
        raise RuntimeError(
            f"publish {version}: vectors read back from Redis differ from the bundle"
        )

    meta: dict[EncodableT, EncodableT] = {
        "version": version,
        "dim": bundle.dim,
        "count": len(item_ids),
        "dtype": VECTOR_DTYPE,
        "query": json.dumps(bundle.query.to_dict()),
        "popular": json.dumps([item_ids[i] for i in bundle.popular.tolist()]),
        "num_candidates": bundle.num_candidates,
        "scoring_vectors": str(bundle.manifest.get("scoring_vectors", "")),
        "event_types": json.dumps(bundle.manifest.get("data", {}).get("event_types", [])),
        "published_at": datetime.fromtimestamp(clock(), tz=UTC).isoformat(timespec="seconds"),
    }
    means = bundle.attribute_means
    if means is not None and means.values:
        # The embedding store builds cold-start input vectors from these (recserve.catalog.vectors).
        blobs_of = encode_vectors(means.input)
        client.hset(
            layout.attribute_means_key(version),
            mapping={means_field(t): blobs_of[row] for row, t in enumerate(means.values)},
        )
    client.hset(layout.meta_key(version), mapping=meta)

    seeded, skipped = _seed_users(client, layout, user_histories, user_features, batch_size)
    if seeded or skipped:
        say(f"publish {version}: seeded {seeded} users, kept online state of {skipped}")

    # The switch: everything above is already in place.
    client.zadd(layout.versions_key(), {version: clock()})
    client.set(layout.active_key(), version)
    deleted = gc_versions(client, retention=retention, layout=layout)
    return PublishResult(
        version=version,
        previous=previous,
        vectors=len(item_ids),
        users_seeded=seeded,
        users_skipped=skipped,
        deleted_versions=deleted,
        seconds=time.perf_counter() - started,
    )


def _seed_users(
    client: redis.Redis,
    layout: RedisLayout,
    histories: Mapping[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]] | None,
    features: Mapping[str, Mapping[str, str]] | None,
    batch_size: int,
) -> tuple[int, int]:
    events_of: dict[str, Sequence[str]] = dict(
        histories.items() if isinstance(histories, Mapping) else histories or ()
    )
    features = features or {}
    users = list(dict.fromkeys([*events_of, *features]))
    if not users:
        return 0, 0
    script = client.register_script(_SEED_USER_LUA)
    seeded = skipped = 0
    for lo in range(0, len(users), batch_size):
        pipe = client.pipeline(transaction=False)
        for user_id in users[lo : lo + batch_size]:
            recent = list(events_of.get(user_id, ()))[-layout.max_user_events :][::-1]
            pairs = [x for kv in features.get(user_id, {}).items() for x in kv]
            script(
                keys=[layout.user_events_key(user_id), layout.user_features_key(user_id)],
                args=[len(recent), *recent, *pairs],
                client=pipe,
            )
        for outcome in pipe.execute():
            if int(outcome):
                seeded += 1
            else:
                skipped += 1
    return seeded, skipped


def published_versions(client: redis.Redis, layout: RedisLayout | None = None) -> list[str]:
    """Newest publish first."""
    layout = layout or RedisLayout()
    # Without withscores every member is bytes (str with decode_responses).
    members = cast("list[bytes | str]", client.zrevrange(layout.versions_key(), 0, -1))
    return [text(v) for v in members]


def gc_versions(
    client: redis.Redis, *, retention: int, layout: RedisLayout | None = None
) -> list[str]:
    """Deletes every key of versions beyond the newest `retention` publishes; never the active one."""
    if retention < 1:
        raise ValueError("retention must be >= 1")
    layout = layout or RedisLayout()
    active = active_version(client, layout)
    doomed = [v for v in published_versions(client, layout)[retention:] if v != active]
    for version in doomed:
        # Out of the registry first: nobody should pick a version that is being deleted.
        client.zrem(layout.versions_key(), version)
        batch: list[Any] = []
        for key in client.scan_iter(match=layout.version_pattern(version), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    return doomed
