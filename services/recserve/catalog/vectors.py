"""Cold-start vectors: how a catalog item the model version has no trained vector for gets one.

Prior: a weighted mean of the version's attribute-value means (`AttributeMeans`) over the
item's attribute values, in both spaces (query/input and index/scoring). The weighting rule
was chosen on MovieLens-100K by `tools/coldstart_eval.py` (docs/training.md, "Cold start").

Refinement: each time RecordEvents stores the item in a user's history, the trained items of
that user's recent history are counted as its neighbours (``recserve:{catalog}:cooc:<id>``,
version independent, at most MAX_NEIGHBOUR_UPDATES updates per item). The served vector is the
prior blended with the count-weighted mean of the neighbours' vectors of the active version:
``(PRIOR_WEIGHT * prior + sum_j c_j v_j) / (PRIOR_WEIGHT + sum_j c_j)``, summed in sorted id
order, so the same counts give the same vector in every process.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import numpy as np
import redis.asyncio as aioredis

from recserve.catalog.store import CatalogStore
from recserve.model.attribute_means import (
    AttributeMeans,
    Token,
    attribute_tokens,
    means_field,
    rescaled,
    token_of,
)
from recserve.model.features import RawValue
from recserve.model.redis_layout import RedisLayout, text
from recserve.vectors import decode_vectors

RULES = ("uniform", "per_attribute", "count")
# Measured best on MovieLens-100K held-out items (docs/training.md, "Cold start").
DEFAULT_RULE = "per_attribute"
# The prior counts as this many neighbour observations.
PRIOR_WEIGHT = 5.0
# Refinement stops after this many recorded events of one item: its vector stays bounded and
# the item is trained for real at the next training run.
MAX_NEIGHBOUR_UPDATES = 200
# Field of the neighbours hash holding the number of updates (item ids are never empty).
UPDATES_FIELD = ""

# KEYS: neighbours hash, refined zset. ARGV: cap, item id, now_ms, neighbour ids...
# Atomic (one hash tag): counts and the change marker the candidates service follows agree.
RECORD_NEIGHBOURS_LUA = """
local n = tonumber(redis.call('HGET', KEYS[1], '') or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], '', 1)
for i = 4, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])
return 1
"""


class VectorSource(enum.IntEnum):
    """Same numbers as recserve.v1.VectorSource."""

    UNSPECIFIED = 0
    TRAINED = 1
    COLD_START = 2
    NONE = 3


def token_weights(means: AttributeMeans, rows: np.ndarray, rule: str) -> np.ndarray:
    """Weights (summing to 1) of the attribute-value rows of one item.

    uniform: every value alike; per_attribute: every attribute alike, split evenly over its
    values (three genres do not outvote one year); count: by how many trained items have it.
    """
    if rule == "uniform":
        w = np.ones(rows.size)
    elif rule == "per_attribute":
        names = [means.values[r][0] for r in rows.tolist()]
        per_name = {name: names.count(name) for name in names}
        w = np.asarray([1.0 / per_name[name] for name in names])
    elif rule == "count":
        w = means.counts[rows].astype(np.float64)
    else:
        raise ValueError(f"unknown cold-start rule {rule!r}; choose from {RULES}")
    return w / w.sum()


def combine(matrix: np.ndarray, w: np.ndarray, *, rescale: bool) -> np.ndarray:
    """Weighted mean of rows; `rescale`: with the weighted mean of their norms as length."""
    block = matrix.astype(np.float64)
    mean = w @ block
    if rescale:
        mean = rescaled(mean, float(w @ np.linalg.norm(block, axis=1)))
    return mean.astype(np.float32)


def prior_vectors(
    means: AttributeMeans,
    attributes: Mapping[str, RawValue],
    rule: str = DEFAULT_RULE,
    *,
    rescale: bool = True,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(input, scoring) float32 prior of an item with these attributes; None when none of its
    attribute values is known to the version (or the result is not finite)."""
    rows = means.rows(attribute_tokens(attributes))
    if rows.size == 0:
        return None
    w = token_weights(means, rows, rule)
    vin = combine(means.input[rows], w, rescale=rescale)
    vout = combine(means.scoring[rows], w, rescale=rescale)
    if not (np.isfinite(vin).all() and np.isfinite(vout).all()):
        return None
    return vin, vout


def refine(prior: np.ndarray, neighbours: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The prior blended with the count-weighted neighbour vectors (rows in a fixed order)."""
    c = np.asarray(counts, dtype=np.float64)
    total = PRIOR_WEIGHT * prior.astype(np.float64) + c @ neighbours.astype(np.float64)
    return (total / (PRIOR_WEIGHT + c.sum())).astype(np.float32)


def neighbour_counts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    """A neighbours hash (HGETALL reply) as {neighbour id: count}, sorted by id."""
    pairs = {text(k): int(v) for k, v in raw.items()}
    pairs.pop(UPDATES_FIELD, None)
    return dict(sorted(pairs.items()))


async def vector_sources(
    client: aioredis.Redis,
    layout: RedisLayout,
    version: str,
    item_ids: Sequence[str],
    attributes: Sequence[Mapping[str, str]],
) -> list[VectorSource]:
    """How `version` represents each item: TRAINED when it has the item, COLD_START when one of
    the item's catalog attributes has a mean in the version, NONE otherwise."""
    pipe = client.pipeline(transaction=False)
    for item_id, attrs in zip(item_ids, attributes, strict=True):
        pipe.hexists(layout.item_features_key(version), item_id)
        fields = [means_field(t) for t in attribute_tokens(attrs)]
        pipe.hmget(layout.attribute_means_key(version), fields or [UPDATES_FIELD])
    replies = await pipe.execute()
    out = []
    for trained, means in zip(replies[::2], replies[1::2], strict=True):
        if trained:
            out.append(VectorSource.TRAINED)
        elif any(m is not None for m in means):
            out.append(VectorSource.COLD_START)
        else:
            out.append(VectorSource.NONE)
    return out


async def vector_source(
    client: aioredis.Redis,
    layout: RedisLayout,
    version: str,
    item_id: str,
    attributes: Mapping[str, str],
) -> VectorSource:
    """`vector_sources` of one item."""
    return (await vector_sources(client, layout, version, [item_id], [attributes]))[0]


class ColdInputVectors:
    """Query-space cold-start vectors from Redis, for the embedding store: the catalog item's
    attributes, the version's attribute means (published with it) and the neighbour counts.
    Nothing is written under a version's keys, so every version (and a new one after publish)
    computes them from its own means."""

    def __init__(self, client: aioredis.Redis, layout: RedisLayout):
        self._redis = client
        self._layout = layout
        self._catalog = CatalogStore(client, layout)
        # Per version (immutable once published); the scoring rows are the input rows: only the
        # input space is served from Redis.
        self._means: dict[str, AttributeMeans] = {}
        self._record = client.register_script(RECORD_NEIGHBOURS_LUA)

    async def _version_means(self, version: str, dim: int) -> AttributeMeans:
        cached = self._means.get(version)
        if cached is None:
            raw = await self._redis.hgetall(self._layout.attribute_means_key(version))
            fields = sorted((text(k), v) for k, v in raw.items())
            values: list[Token] = [token_of(name) for name, _ in fields]
            matrix, _ = decode_vectors([v for _, v in fields], dim)
            cached = AttributeMeans(values, matrix, matrix, np.ones(len(values), dtype=np.int64))
            self._means[version] = cached
        return cached

    async def vectors(
        self, version: str, dim: int, item_ids: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Cold-start input vectors of the catalog items among `item_ids` that share an
        attribute value with the version's trained items (available or not)."""
        if not item_ids:
            return {}
        items = await self._catalog.get(item_ids)
        present = [item for item in items if item is not None and item.attributes]
        if not present:
            return {}
        means = await self._version_means(version, dim)
        pipe = self._redis.pipeline(transaction=False)
        for item in present:
            pipe.hgetall(self._layout.cold_neighbours_key(item.item_id))
        counts = [neighbour_counts(r) for r in await pipe.execute()]
        out: dict[str, np.ndarray] = {}
        for item, neighbours in zip(present, counts, strict=True):
            prior = prior_vectors(means, item.attributes)
            if prior is None:
                continue
            vector = prior[0]
            if neighbours:
                ids = list(neighbours)
                raw = await self._redis.mget([self._layout.vector_key(version, i) for i in ids])
                found_vectors, found = decode_vectors(raw, dim)
                c = np.asarray([neighbours[i] for i in ids])[found]
                if c.size:
                    vector = refine(vector, found_vectors[found], c)
            out[item.item_id] = vector
        return out

    async def record(self, item_id: str, neighbour_ids: Sequence[str], now_ms: int) -> bool:
        """Counts `neighbour_ids` (trained items of the same user's recent history) for the
        cold-start item; False once it had MAX_NEIGHBOUR_UPDATES updates."""
        keys = [self._layout.cold_neighbours_key(item_id), self._layout.cold_refined_key()]
        args: list[str | int] = [MAX_NEIGHBOUR_UPDATES, item_id, now_ms]
        args += sorted(set(neighbour_ids))
        return bool(await self._record(keys=keys, args=args))
