"""Deterministic synthetic interaction logs of any size, streamed to CSV or Parquet.

Model: items belong to latent taste clusters and have power-law (Zipf) popularity; each user
likes a few clusters. A user's events form runs in one cluster (stay with probability
`stay_probability`, else jump to another liked cluster, or explore a random one); within a
cluster items are drawn by popularity. Time advances by short gaps inside a session and long
ones between sessions. Items get genres and a year tied to their cluster, users an age and
gender tied to their tastes and a preferred device (a per-event context column).

Events are generated and written in chunks of users (about `CHUNK_EVENTS` events each), each
chunk from its own seeded generator, so the output depends only on the spec and memory stays
bounded whatever the size (items and per-user arrays are the only full-size state).
"""

from __future__ import annotations

import json
import math
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recserve.training.data import SYNTHETIC_MANIFEST

MAX_ITEMS = 5_000_000
MAX_EVENTS = 100_000_000
CHUNK_EVENTS = 1_000_000
MAX_LIKED = 4
REDRAWS = 3
GENRES = [
    "action",
    "adventure",
    "animation",
    "comedy",
    "crime",
    "documentary",
    "drama",
    "family",
    "fantasy",
    "history",
    "horror",
    "music",
    "mystery",
    "romance",
    "scifi",
    "thriller",
    "war",
    "western",
]
EVENT_TYPES = ("view", "click", "purchase")
EVENT_PROBS = (0.8, 0.15, 0.05)
EVENT_WEIGHTS = (1.0, 2.0, 5.0)
DEVICES = ("ios", "android", "web")
GENDERS = ("F", "M", "X")


@dataclass(frozen=True)
class SyntheticSpec:
    items: int
    users: int
    events: int
    seed: int = 0
    clusters: int = 0  # 0 = about sqrt(items) / 2
    popularity_exponent: float = 1.0
    stay_probability: float = 0.8
    explore_probability: float = 0.1
    session_break_probability: float = 0.1
    start: int = 1_600_000_000
    span_days: float = 365.0

    def __post_init__(self) -> None:
        if not 10 <= self.items <= MAX_ITEMS:
            raise ValueError(f"items must be in [10, {MAX_ITEMS:,}], got {self.items:,}")
        if not 1 <= self.users <= self.events <= MAX_EVENTS:
            raise ValueError(f"need 1 <= users <= events <= {MAX_EVENTS:,}")
        if self.popularity_exponent <= 0:
            raise ValueError("popularity_exponent must be positive")

    @property
    def num_clusters(self) -> int:
        return self.clusters or max(4, round(math.sqrt(self.items) / 2))


@dataclass
class _Catalog:
    cluster: np.ndarray  # int32 [items]
    order: np.ndarray  # items sorted by cluster
    cumulative: np.ndarray  # cumulative popularity along `order`
    cluster_lo: np.ndarray  # cumulative mass before each cluster
    cluster_mass: np.ndarray


def _catalog(spec: SyntheticSpec) -> _Catalog:
    rng = np.random.default_rng([spec.seed, 0])
    k = spec.num_clusters
    cluster = rng.integers(0, k, spec.items).astype(np.int32)
    popularity = (rng.permutation(spec.items) + 1.0) ** -spec.popularity_exponent
    order = np.argsort(cluster, kind="stable")
    cumulative = np.cumsum(popularity[order])
    ends = np.searchsorted(cluster[order], np.arange(k), side="right")
    upper = np.where(ends > 0, cumulative[np.maximum(ends - 1, 0)], 0.0)
    lower = np.concatenate([[0.0], upper[:-1]])
    return _Catalog(cluster, order, cumulative, lower, upper - lower)


def _event_counts(spec: SyntheticSpec) -> np.ndarray:
    """Heavy-tailed activity, every user at least one event, summing exactly to spec.events."""
    rng = np.random.default_rng([spec.seed, 1])
    activity = rng.pareto(1.2, spec.users) + 1.0
    activity = np.minimum(activity, 50.0 * activity.mean())
    extra = spec.events - spec.users
    share = activity / activity.sum() * extra
    counts = np.floor(share).astype(np.int64)
    remainder = extra - int(counts.sum())
    counts[np.argsort(-(share - counts), kind="stable")[:remainder]] += 1
    return counts + 1


def _tastes(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    """Liked clusters [users, MAX_LIKED] and cumulative preference weights."""
    rng = np.random.default_rng([spec.seed, 2])
    liked = rng.integers(0, spec.num_clusters, (spec.users, MAX_LIKED))
    n_liked = np.minimum(rng.geometric(0.5, spec.users), MAX_LIKED)
    weights = rng.dirichlet(np.ones(MAX_LIKED), spec.users) * (
        np.arange(MAX_LIKED)[None, :] < n_liked[:, None]
    )
    weights /= weights.sum(axis=1, keepdims=True)
    return liked, np.cumsum(weights, axis=1)


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _item_tables(
    spec: SyntheticSpec, catalog: _Catalog, chunk: int = 1_000_000
) -> Iterator[pa.Table]:
    rng = np.random.default_rng([spec.seed, 3])
    k = spec.num_clusters
    cluster_genre = rng.integers(0, len(GENRES), k)
    cluster_year = rng.integers(1950, 2025, k)
    for lo in range(0, spec.items, chunk):
        hi = min(spec.items, lo + chunk)
        part = np.random.default_rng([spec.seed, 4, lo])
        c = catalog.cluster[lo:hi]
        primary = np.asarray(GENRES)[cluster_genre[c]]
        second = np.asarray(GENRES)[part.integers(0, len(GENRES), hi - lo)]
        has_second = (part.random(hi - lo) < 0.3) & (second != primary)
        genres = np.where(has_second, np.char.add(np.char.add(primary, "|"), second), primary)
        years = np.clip(cluster_year[c] + part.integers(-5, 6, hi - lo), 1950, 2025)
        yield pa.table(
            {
                "item_id": _ids("i", np.arange(lo, hi)),
                "genres": pa.array(genres),
                "year": pa.array(years),
            }
        )


def _user_tables(
    spec: SyntheticSpec, liked: np.ndarray, chunk: int = 1_000_000
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    for lo in range(0, spec.users, chunk):
        hi = min(spec.users, lo + chunk)
        rng = np.random.default_rng([spec.seed, 5, lo])
        favourite = liked[lo:hi, 0]
        age = np.clip(np.round(rng.normal(20 + (favourite % 5) * 9, 6)), 14, 90).astype(np.int64)
        gender = np.asarray(GENDERS)[
            np.where(rng.random(hi - lo) < 0.04, 2, (favourite + (rng.random(hi - lo) < 0.2)) % 2)
        ]
        device = rng.integers(0, len(DEVICES), hi - lo)
        table = pa.table(
            {
                "user_id": _ids("u", np.arange(lo, hi)),
                "age": pa.array(age),
                "gender": pa.array(gender),
            }
        )
        yield table, device


def _event_chunks(
    spec: SyntheticSpec,
    catalog: _Catalog,
    counts: np.ndarray,
    liked: np.ndarray,
    cum_pref: np.ndarray,
    device: np.ndarray,
) -> Iterator[pa.Table]:
    ends = np.cumsum(counts)
    # Chunk boundaries depend only on the counts, so the output does not depend on memory.
    boundaries = np.unique(
        np.searchsorted(ends, np.arange(CHUNK_EVENTS, int(ends[-1]), CHUNK_EVENTS), side="left")
    )
    starts = [0, *(boundaries + 1).tolist()]
    stops = [*(boundaries + 1).tolist(), spec.users]
    span = spec.span_days * 86_400.0
    user_start = spec.start + np.random.default_rng([spec.seed, 6]).random(spec.users) * span * 0.8
    for chunk_no, (u_lo, u_hi) in enumerate(zip(starts, stops, strict=True)):
        if u_lo >= u_hi:
            continue
        rng = np.random.default_rng([spec.seed, 7, chunk_no])
        c = counts[u_lo:u_hi]
        n = int(c.sum())
        user = np.repeat(np.arange(u_lo, u_hi), c)
        first = np.zeros(n, dtype=bool)
        first[np.concatenate([[0], np.cumsum(c)[:-1]])] = True
        switch = first | (rng.random(n) >= spec.stay_probability)
        segment = np.cumsum(switch) - 1
        seg_user = user[switch]
        explore = rng.random(seg_user.size) < spec.explore_probability
        pick = (cum_pref[seg_user] < rng.random(seg_user.size)[:, None]).sum(axis=1)
        seg_cluster = np.where(
            explore,
            rng.integers(0, spec.num_clusters, seg_user.size),
            liked[seg_user, np.minimum(pick, MAX_LIKED - 1)],
        )
        cluster = seg_cluster[segment]
        item = _draw(catalog, cluster, rng, spec.items)
        # People rarely consume the same item twice: redraw repeats a few times (some stay).
        for _ in range(REDRAWS):
            key = user.astype(np.int64) * spec.items + item
            _, first_seen = np.unique(key, return_index=True)
            repeat = np.ones(n, dtype=bool)
            repeat[first_seen] = False
            if not repeat.any():
                break
            item[repeat] = _draw(catalog, cluster[repeat], rng, spec.items)

        breaks = (rng.random(n) < spec.session_break_probability) | (switch & (rng.random(n) < 0.5))
        gaps = np.where(breaks, rng.exponential(2 * 86_400.0, n), rng.exponential(300.0, n))
        gaps[first] = 0.0
        elapsed = np.cumsum(gaps)
        elapsed -= np.repeat(elapsed[first], c)
        timestamp = (user_start[user] + elapsed).astype(np.int64)

        kind = rng.choice(len(EVENT_TYPES), n, p=EVENT_PROBS)
        own_device = rng.random(n) < 0.8
        event_device = np.where(own_device, device[user], rng.integers(0, len(DEVICES), n))
        yield pa.table(
            {
                "user_id": _ids("u", user),
                "item_id": _ids("i", item),
                "timestamp": pa.array(timestamp),
                "event_type": pa.array(np.asarray(EVENT_TYPES)[kind]),
                "weight": pa.array(np.asarray(EVENT_WEIGHTS)[kind]),
                "device": pa.array(np.asarray(DEVICES)[event_device]),
            }
        )


def _draw(
    catalog: _Catalog, cluster: np.ndarray, rng: np.random.Generator, n_items: int
) -> np.ndarray:
    """Items of the given clusters, by popularity within the cluster."""
    target = catalog.cluster_lo[cluster] + rng.random(cluster.size) * catalog.cluster_mass[cluster]
    position = np.minimum(np.searchsorted(catalog.cumulative, target, side="right"), n_items - 1)
    return catalog.order[position]


class _Sink:
    """Streams tables to one CSV or Parquet file."""

    def __init__(self, path: Path, fmt: str):
        self.path = path
        self.fmt = fmt
        self._writer: Any = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(str(self.path), table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(str(self.path), table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def generate(
    spec: SyntheticSpec,
    out: Path,
    *,
    fmt: str = "parquet",
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Writes events, items and users into `out` plus a synthetic.json descriptor."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format must be csv or parquet, got {fmt!r}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files = {name: f"{name}.{fmt}" for name in ("events", "items", "users")}
    catalog = _catalog(spec)
    counts = _event_counts(spec)
    liked, cum_pref = _tastes(spec)

    items = _Sink(out / files["items"], fmt)
    for table in _item_tables(spec, catalog):
        items.write(table)
    items.close()
    users = _Sink(out / files["users"], fmt)
    devices = []
    for table, device in _user_tables(spec, liked):
        users.write(table)
        devices.append(device)
    users.close()
    events = _Sink(out / files["events"], fmt)
    try:
        for table in _event_chunks(spec, catalog, counts, liked, cum_pref, np.concatenate(devices)):
            events.write(table)
            say(f"synthetic: {events.rows:,}/{spec.events:,} events")
    finally:
        events.close()
    manifest = {
        "spec": asdict(spec),
        "seed": spec.seed,
        "clusters": spec.num_clusters,
        "files": files,
        "rows": {"events": events.rows, "items": items.rows, "users": users.rows},
        "context_columns": ["device"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / SYNTHETIC_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ------------------------------------------------------------------------ ANN benchmark


def clustered_vectors(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors shaped like word2vec output vectors: clusters, unnormalised norms.
    Returns (vectors, cluster of each vector)."""
    rng = np.random.default_rng([seed, 8])
    k = max(4, round(math.sqrt(n) / 2))
    centroids = rng.standard_normal((k, dim)).astype(np.float32)
    cluster = rng.integers(0, k, n)
    vectors = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 1 << 18):
        hi = min(n, lo + (1 << 18))
        noise = rng.standard_normal((hi - lo, dim)).astype(np.float32)
        norm = rng.lognormal(0.0, 0.3, (hi - lo, 1)).astype(np.float32)
        vectors[lo:hi] = (centroids[cluster[lo:hi]] + 0.8 * noise) * norm / math.sqrt(dim)
    return vectors, cluster


def _build_in_child(vectors_path: str, config: dict[str, Any], out: str) -> None:
    """Runs in a fresh process so its peak RSS is the build's alone."""
    from recserve.model.ann import AnnConfig
    from recserve.training.ann_tuning import build_index

    index, seconds = build_index(np.load(vectors_path), AnnConfig.from_dict(config))
    index.serialize(Path(out) / "index")
    (Path(out) / "build.json").write_text(json.dumps({"seconds": seconds}))


def bench_ann(
    items: int,
    dim: int,
    *,
    queries: int = 1000,
    seed: int = 0,
    k: int = 100,
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """ScaNN on synthetic clustered vectors: build time and peak memory (measured in a child
    process), size on disk, load time, then search tuned to recall@k >= 0.95 with its latency,
    and recall@10 at that setting."""
    import multiprocessing

    from recserve.model.ann import AnnIndex
    from recserve.training.ann_tuning import config_for, exact_topk, measure, tune_search

    vectors, cluster = clustered_vectors(items, dim, seed)
    rng = np.random.default_rng([seed, 9])
    # Queries like a user's history: the mean of a few items of one cluster.
    by_cluster = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[by_cluster], np.arange(cluster.max() + 2))
    rows = []
    for anchor in rng.integers(0, items, queries):
        members = by_cluster[starts[cluster[anchor]] : starts[cluster[anchor] + 1]]
        rows.append(
            vectors[rng.choice(members, size=min(5, members.size), replace=False)].mean(axis=0)
        )
    qs = np.stack(rows).astype(np.float32)
    config = config_for(items)
    with tempfile.TemporaryDirectory(prefix="recserve-bench-") as tmp:
        np.save(Path(tmp) / "vectors.npy", vectors)
        say(f"building {config.kind} over {items:,} x {dim} in a child process")
        child = multiprocessing.get_context("spawn").Process(
            target=_build_in_child, args=(str(Path(tmp) / "vectors.npy"), config.to_dict(), tmp)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"index build failed (exit code {child.exitcode})")
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        build_seconds = json.loads((Path(tmp) / "build.json").read_text())["seconds"]
        disk = sum(p.stat().st_size for p in (Path(tmp) / "index").rglob("*") if p.is_file())
        started = time.perf_counter()
        index = AnnIndex.load(Path(tmp) / "index", size=items, dim=dim, config=config)
        load_seconds = time.perf_counter() - started
        index.search_batched(qs[:1], 10)  # warm-up
        index, report = tune_search(index, vectors, qs, k, say=say)
    at10 = measure(index, qs, exact_topk(qs, vectors, 10))
    return {
        "items": items,
        "dim": dim,
        "queries": queries,
        "config": index.config.to_dict(),
        "build_seconds": round(build_seconds, 2),
        "build_peak_rss_mb": round(peak_kb / 1024, 1),
        "vectors_mb": round(vectors.nbytes / 2**20, 1),
        "index_mb_on_disk": round(disk / 2**20, 1),
        "load_seconds": round(load_seconds, 3),
        f"recall@{report['k']}": report[f"recall@{report['k']}"],
        f"latency_p50_ms@{report['k']}": report["latency_p50_ms"],
        f"latency_p99_ms@{report['k']}": report["latency_p99_ms"],
        "recall@10": round(at10["recall@10"], 4),
        "latency_p50_ms@10": round(at10["latency_p50_ms"], 4),
        "latency_p99_ms@10": round(at10["latency_p99_ms"], 4),
        "trials": report["trials"],
    }
