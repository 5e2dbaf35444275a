"""Realistic request mixes drawn from MovieLens users and items.

Users and their histories come from the MovieLens interactions (data/ or the recbole wheel
that bootstrap downloads); items are restricted to the newest bundle's catalog when one
exists, so requests mostly hit known items like production traffic would.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recserve.v1 import recommender_pb2, types_pb2

INTER_IN_WHEEL = "recbole/dataset_example/ml-100k/ml-100k.inter"
DEVICES = ("ios", "android", "web")


@dataclass(frozen=True)
class Catalog:
    user_ids: list[str]
    item_ids: list[str]
    item_weights: np.ndarray  # popularity, sums to 1: sessions sample popular items more
    histories: dict[str, list[str]]  # per user, oldest first
    source: str


def _read_inter_rows(data_dir: Path) -> tuple[list[tuple[str, str, float]], str] | None:
    """(user, item, timestamp) rows from ml-100k.inter under data_dir or inside the wheel."""
    text: str | None = None
    source = ""
    for path in sorted(data_dir.rglob("ml-100k.inter")):
        text, source = path.read_text(), str(path)
        break
    if text is None:
        for wheel in sorted(data_dir.glob("recbole-*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                text, source = zf.read(INTER_IN_WHEEL).decode(), f"{wheel}:{INTER_IN_WHEEL}"
            break
    if text is None:
        return None
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = [h.split(":")[0] for h in next(reader)]
    u, i, t = header.index("user_id"), header.index("item_id"), header.index("timestamp")
    return [(r[u], r[i], float(r[t])) for r in reader if r], source


def _bundle_items(bundles_dir: Path) -> set[str] | None:
    versions = sorted((p for p in bundles_dir.glob("*") if p.is_dir()), key=lambda p: p.name)
    if not versions:
        return None
    try:
        from recserve.model import load_bundle
    except ImportError:
        return None
    return {str(i) for i in load_bundle(versions[-1]).item_ids}


def load_catalog(data_dir: Path = Path("data"), bundles_dir: Path = Path("bundles")) -> Catalog:
    rows_src = _read_inter_rows(data_dir) if data_dir.exists() else None
    known = _bundle_items(bundles_dir) if bundles_dir.exists() else None
    if rows_src is None:
        # No data fetched yet: MovieLens-100K's id ranges, uniform popularity.
        items = sorted(known) if known else [str(i) for i in range(1, 1683)]
        users = [str(u) for u in range(1, 944)]
        return Catalog(
            users, items, np.full(len(items), 1 / len(items)), {}, "synthetic MovieLens ids"
        )
    rows, source = rows_src
    rows.sort(key=lambda r: r[2])
    histories: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for user, item, _ in rows:
        if known is not None and item not in known:
            continue
        histories.setdefault(user, []).append(item)
        counts[item] = counts.get(item, 0) + 1
    items = sorted(counts)
    weights = np.array([counts[i] for i in items], dtype=np.float64)
    return Catalog(sorted(histories), items, weights / weights.sum(), histories, source)


class RequestFactory:
    """Seeded generator of varied requests (same seed, same sequence)."""

    def __init__(self, catalog: Catalog, seed: int = 0) -> None:
        self.catalog = catalog
        self.rng = np.random.default_rng(seed)

    def user(self) -> str:
        return self.catalog.user_ids[int(self.rng.integers(len(self.catalog.user_ids)))]

    def popular_items(self, n: int) -> list[str]:
        idx = self.rng.choice(len(self.catalog.item_ids), size=n, p=self.catalog.item_weights)
        return [self.catalog.item_ids[int(i)] for i in idx]

    def session_items(self, user: str, n: int) -> list[str]:
        """A plausible session: a slice of the user's own history, else popular items."""
        hist = self.catalog.histories.get(user, [])
        if len(hist) > n:
            start = int(self.rng.integers(len(hist) - n))
            return hist[start : start + n]
        return self.popular_items(n)

    def recommend(self) -> recommender_pb2.RecommendRequest:
        # 75 % known users (stored history, sometimes a short session on top), 25 % anonymous
        # sessions: the gateway's two main paths in the proportions a storefront sees.
        if self.rng.random() < 0.75:
            user = self.user()
            recent = self.session_items(user, int(self.rng.integers(0, 4)))
        else:
            user = ""
            recent = self.popular_items(int(self.rng.integers(1, 6)))
        return recommender_pb2.RecommendRequest(
            user_id=user,
            recent_item_ids=recent,
            context={"device": DEVICES[int(self.rng.integers(len(DEVICES)))]},
            k=10 if self.rng.random() < 0.8 else 20,
        )

    def record_events(self, user: str, n: int) -> recommender_pb2.RecordEventsRequest:
        return recommender_pb2.RecordEventsRequest(
            user_id=user,
            events=[
                types_pb2.Event(item_id=i, timestamp_ms=0, event_type="view")
                for i in self.session_items(user, n)
            ],
        )

    def similar(self) -> recommender_pb2.GetSimilarItemsRequest:
        return recommender_pb2.GetSimilarItemsRequest(item_id=self.popular_items(1)[0], k=10)

    def recommend_pool(self, n: int) -> Iterator[bytes]:
        """n serialized Recommend requests: generators send bytes, so no per-call encoding."""
        for _ in range(n):
            yield self.recommend().SerializeToString()
