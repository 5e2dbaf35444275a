"""Cold-start items next to the ScaNN index: catalog items a bundle version has no vector for,
searched by brute-force numpy dot product and merged with the ScaNN results by score.

ScaNN is never mutated (mutation is not safe concurrently with searches); a new catalog item is
searchable as soon as the `CatalogView` reports it (`on_change`), and refined vectors as soon as
`ColdStartItems.refresh()` reads them (the service polls the refinement marker in Redis).
Only finite vectors are stored: `prior_vectors` returns None for anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import cast

import numpy as np
import redis.asyncio as aioredis

from recserve.catalog.vectors import neighbour_counts, prior_vectors, refine
from recserve.catalog.view import CatalogView
from recserve.model import Bundle, RedisLayout
from recserve.model.redis_layout import text

log = logging.getLogger(__name__)

# Side indexes kept: the versions a ModelRegistry serves (the newest and the one before).
KEEP_VERSIONS = 2


class SideIndex:
    """One version's cold-start items: rows of an input and a scoring matrix (capacity doubles,
    so adding an item is O(dim))."""

    def __init__(self, dim: int):
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._input = np.zeros((16, dim), dtype=np.float32)
        self._scoring = np.zeros((16, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def put(self, item_id: str, vin: np.ndarray, vout: np.ndarray) -> None:
        if not (np.isfinite(vin).all() and np.isfinite(vout).all()):
            raise ValueError(f"cold-start vector of {item_id!r} is not finite")
        row = self._row.get(item_id)
        if row is None:
            row = len(self._ids)
            if row == self._input.shape[0]:
                self._input = np.concatenate([self._input, np.zeros_like(self._input)])
                self._scoring = np.concatenate([self._scoring, np.zeros_like(self._scoring)])
            self._ids.append(item_id)
            self._row[item_id] = row
        self._input[row] = vin
        self._scoring[row] = vout

    def remove(self, item_id: str) -> None:
        row = self._row.pop(item_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row] = moved
            self._row[moved] = row
            self._input[row] = self._input[last]
            self._scoring[row] = self._scoring[last]
        self._ids.pop()

    def input_vector(self, item_id: str) -> np.ndarray | None:
        row = self._row.get(item_id)
        return None if row is None else self._input[row]

    def search(self, query: np.ndarray, k: int, skip: set[str]) -> list[tuple[str, float]]:
        """Top-k (item id, score) by dot product, ties by id; `skip` ids left out."""
        n = len(self._ids)
        if n == 0 or k < 1:
            return []
        scores = self._scoring[:n] @ query.astype(np.float32)
        fetch = min(n, k + len(skip))
        top = np.argpartition(-scores, fetch - 1)[:fetch] if fetch < n else np.arange(n)
        ranked = sorted((-float(scores[r]), self._ids[r]) for r in top.tolist())
        return [(i, -s) for s, i in ranked if i not in skip][:k]


class ColdStartItems:
    """Side indexes of the last KEEP_VERSIONS loaded bundles, kept current from the catalog
    copy's changes (new, changed, taken-down items) and the refinement marker."""

    def __init__(self, view: CatalogView, client: aioredis.Redis, layout: RedisLayout):
        self._view = view
        self._redis = client
        self._layout = layout
        # Every catalog id the copy reported (it offers no iteration).
        self._ids: set[str] = set()
        self._neighbours: dict[str, dict[str, int]] = {}
        self._indexes: dict[str, tuple[Bundle, SideIndex]] = {}
        self._refined_after = 0.0
        view.on_change.append(self._changed)

    def index(self, bundle: Bundle) -> SideIndex:
        """The version's side index, built from every known catalog item on first use."""
        entry = self._indexes.get(bundle.version)
        if entry is not None and entry[0] is bundle:
            return entry[1]
        side = SideIndex(bundle.dim)
        for item_id in sorted(self._ids):
            self._update(bundle, side, item_id)
        self._indexes.pop(bundle.version, None)
        self._indexes[bundle.version] = (bundle, side)
        while len(self._indexes) > KEEP_VERSIONS:
            del self._indexes[next(iter(self._indexes))]
        return side

    def _changed(self, ids: Sequence[str], op: str) -> None:
        if op == "snapshot":
            self._ids = set(ids)
            self._indexes.clear()
            return
        self._ids.update(i for i in ids if i in self._view)
        for bundle, side in self._indexes.values():
            for item_id in ids:
                self._update(bundle, side, item_id)

    async def refresh(self) -> int:
        """Re-reads the neighbour counts of items refined since the last call (the last
        millisecond again: a write in it may have come after the read); returns how many."""
        key = self._layout.cold_refined_key()
        raw = cast(
            "list[tuple[bytes, float]]",
            await self._redis.zrangebyscore(key, self._refined_after, "+inf", withscores=True),
        )
        if not raw:
            return 0
        ids = [text(member) for member, _ in raw]
        self._refined_after = max(float(score) for _, score in raw)
        pipe = self._redis.pipeline(transaction=False)
        for item_id in ids:
            pipe.hgetall(self._layout.cold_neighbours_key(item_id))
        counts = [neighbour_counts(r) for r in await pipe.execute()]
        for item_id, neighbours in zip(ids, counts, strict=True):
            self._neighbours[item_id] = neighbours
            for bundle, side in self._indexes.values():
                self._update(bundle, side, item_id)
        return len(ids)

    def _update(self, bundle: Bundle, side: SideIndex, item_id: str) -> None:
        means = bundle.attribute_means
        if item_id in bundle.item_index or means is None:
            return
        if item_id not in self._view or not self._view.is_available(item_id):
            side.remove(item_id)
            return
        prior = prior_vectors(means, self._view.attributes(item_id))
        if prior is None:
            side.remove(item_id)
            return
        vin, vout = prior
        neighbours = self._neighbours.get(item_id, {})
        rows = [(bundle.item_index[i], c) for i, c in neighbours.items() if i in bundle.item_index]
        if rows:
            index = np.asarray([r for r, _ in rows])
            count = np.asarray([c for _, c in rows])
            vin = refine(vin, bundle.input_vectors[index], count)
            vout = refine(vout, bundle.scoring_vectors[index], count)
        side.put(item_id, vin, vout)


# How often the candidates service reads refined cold-start items.
REFRESH_INTERVAL_S = 0.5


def follow_refinements(cold: ColdStartItems) -> asyncio.Task[None]:
    """Background task calling `cold.refresh()` every REFRESH_INTERVAL_S (errors logged, retried)."""

    async def loop() -> None:
        while True:
            try:
                await cold.refresh()
            except Exception as exc:
                log.warning("cannot read cold-start refinements: %s", exc)
            await asyncio.sleep(REFRESH_INTERVAL_S)

    return asyncio.create_task(loop(), name="cold-start-refinements")
