"""ScaNN vs FAISS vs hnswlib: recall@10 against QPS at batch size 1, one search thread.

Datasets: (a) the trained MovieLens item vectors (the newest bundle's indexed vectors, queried
with users' query vectors built the way serving builds them); (b) a synthetic clustered
catalog of unit vectors (1M x 64 for the full run). Ground truth is exact dot-product top-10.

    python -m loadtest.ann_bench --synthetic-n 1000000 --out loadtest/results/ann.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.workload import load_catalog

K = 10
RECALL_TARGETS = (0.90, 0.95, 0.99)
BUILD_THREADS = 2  # the machine's cores; searches always run on one thread


@dataclass
class Dataset:
    name: str
    db: np.ndarray  # float32 [n, d], scored by dot product
    queries: np.ndarray  # float32 [q, d]
    truth: np.ndarray  # int64 [q, K], exact top-K
    normalized: bool
    note: str


@dataclass
class Point:
    method: str
    params: dict[str, Any]
    recall: float
    qps: float


@dataclass
class MethodResult:
    method: str
    build_s: float
    index_mb: float
    points: list[Point] = field(default_factory=list)


def exact_topk(db: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """Exact top-k by dot product, chunked over the database to bound memory."""
    best_s = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((queries.shape[0], 0), dtype=np.int64)
    for lo in range(0, db.shape[0], chunk):
        scores = queries @ db[lo : lo + chunk].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        best_i = np.concatenate([best_i, part + lo], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(best_s, keep, 1)
        best_i = np.take_along_axis(best_i, keep, 1)
    return best_i


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / K (ids < 0 are padding, never a hit)."""
    hits = sum(
        len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / truth.size


def synthetic_clustered(n: int, dim: int, nq: int, seed: int = 0) -> Dataset:
    """Unit vectors around n/1000 random centres (cosine to centre ~0.86): a catalog with
    topical structure, which is what makes partitioning (IVF, ScaNN trees) meaningful."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(n // 1000, 16), dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    spread = 0.6 / np.sqrt(dim)

    def sample(m: int) -> np.ndarray:
        out = np.empty((m, dim), dtype=np.float32)
        for lo in range(0, m, 200_000):
            hi = min(m, lo + 200_000)
            c = centers[rng.integers(len(centers), size=hi - lo)]
            x = c + spread * rng.standard_normal((hi - lo, dim)).astype(np.float32)
            out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    db, queries = sample(n), sample(nq)
    return Dataset(
        f"synthetic {n:,} x {dim}",
        db,
        queries,
        exact_topk(db, queries, K),
        normalized=True,
        note=f"{len(centers)} clusters, unit vectors, seed {seed}",
    )


def _newest_bundle(bundles: Path) -> Path | None:
    dirs = sorted(p for p in bundles.glob("*") if (p / "manifest.json").exists())
    return dirs[-1] if dirs else None


def movielens(bundles: Path, data_dir: Path, nq: int, seed: int = 0) -> Dataset:
    """The bundle's indexed (scoring) vectors, queried with users' serving query vectors.

    Without a bundle, a quick word2vec (sg, 20 epochs) on the MovieLens sequences stands in:
    output vectors indexed, input vectors as queries, as recserve serves them.
    """
    catalog = load_catalog(data_dir, bundles)
    rng = np.random.default_rng(seed)
    bundle_dir = _newest_bundle(bundles) if bundles.exists() else None
    if bundle_dir is not None:
        from recserve.model import load_bundle, query_vector

        b = load_bundle(bundle_dir, parts={"vectors"})
        scann_db = bundle_dir / "scann" / "dataset.npy"
        # ScaNN keeps the exact vectors it re-scores with; they are the indexed ones.
        db = np.load(scann_db) if scann_db.exists() else b.input_vectors
        pos = {item: i for i, item in enumerate(b.item_ids)}
        users = [u for u in catalog.user_ids if any(i in pos for i in catalog.histories.get(u, []))]
        picked = rng.choice(len(users), size=min(nq, len(users)), replace=False)
        queries = np.stack(
            [
                query_vector(
                    b.input_vectors[[pos[i] for i in catalog.histories[users[j]] if i in pos]],
                    b.query,
                )
                for j in picked
            ]
        )
        src = f"bundle {bundle_dir.name} ({'scann/dataset.npy' if scann_db.exists() else 'input vectors'})"
    else:
        from gensim.models import Word2Vec

        seqs = [catalog.histories[u] for u in catalog.user_ids]
        model = Word2Vec(
            seqs,
            vector_size=64,
            window=5,
            min_count=1,
            sg=1,
            negative=5,
            epochs=20,
            workers=BUILD_THREADS,
            seed=seed,
        )
        order = [model.wv.key_to_index[i] for i in catalog.item_ids]
        db = model.syn1neg[order]
        qi = rng.choice(len(catalog.item_ids), size=min(nq, len(catalog.item_ids)), replace=False)
        queries = model.wv.vectors[[order[i] for i in qi]]
        src = "quick gensim word2vec (no bundle yet): output vectors indexed, input vectors queried"
    db = np.ascontiguousarray(db, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    return Dataset(
        f"MovieLens-100K items ({db.shape[0]:,} x {db.shape[1]})",
        db,
        queries,
        exact_topk(db, queries, K),
        normalized=False,
        note=src,
    )


# --- methods ---------------------------------------------------------------------------------

Search = Callable[[np.ndarray], np.ndarray]  # one query [d] -> ids [K]


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def scann_method(ds: Dataset) -> tuple[float, float, Iterator[tuple[dict[str, Any], Search]]]:
    from scann.scann_ops.py import scann_ops_pybind

    n = ds.db.shape[0]
    t0 = time.perf_counter()
    builder = scann_ops_pybind.builder(ds.db, K, "dot_product")
    builder.set_n_training_threads(BUILD_THREADS)
    tree = n >= 20_000
    if tree:
        leaves = round(math.sqrt(n))
        builder = builder.tree(
            num_leaves=leaves,
            num_leaves_to_search=leaves // 20,
            training_sample_size=min(n, 250_000),
            spherical=ds.normalized,
        )
    searcher = (
        builder.score_ah(
            2, anisotropic_quantization_threshold=0.2, training_sample_size=min(n, 250_000)
        )
        .reorder(400)
        .build()
    )
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        searcher.serialize(tmp)
        mb = _dir_mb(Path(tmp))

    def configs() -> Iterator[tuple[dict[str, Any], Search]]:
        # ScaNN takes its search-time parameters per call; leaves only exist with a tree.
        grid = (
            [(ls, pre) for ls in (4, 8, 16, 32, 64, 128) for pre in (50, 100, 200)]
            if tree
            else [(None, pre) for pre in (10, 20, 40, 80, 160, 400)]
        )
        for leaves_to_search, pre in grid:

            def search(
                q: np.ndarray, ls: int | None = leaves_to_search, p: int = pre
            ) -> np.ndarray:
                kwargs = {"leaves_to_search": ls} if ls is not None else {}
                return searcher.search(
                    q, final_num_neighbors=K, pre_reorder_num_neighbors=p, **kwargs
                )[0]

            params = {"reorder": pre} | ({"leaves_to_search": leaves_to_search} if tree else {})
            yield params, search
        if not tree:
            # What recserve serves below 20k items: exact scoring, the recall-1.0 reference.
            exact = scann_ops_pybind.builder(ds.db, K, "dot_product").score_brute_force().build()
            yield {"brute_force": True}, lambda q: exact.search(q, final_num_neighbors=K)[0]

    return build_s, mb, configs()


def faiss_ivfpq_method(ds: Dataset) -> tuple[float, float, Iterator[tuple[dict[str, Any], Search]]]:
    import faiss

    n, d = ds.db.shape
    nlist = int(max(16, round(np.sqrt(n) * (2 if n >= 100_000 else 1))))
    faiss.omp_set_num_threads(BUILD_THREADS)
    t0 = time.perf_counter()
    # Any: the IndexRefine wrapper (k_factor) is not in faiss' type hints.
    index: Any = faiss.index_factory(
        d, f"IVF{nlist},PQ{d // 2}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT
    )
    sample = ds.db[np.random.default_rng(0).permutation(n)[: min(n, 200_000)]]
    index.train(sample)
    index.add(ds.db)
    build_s = time.perf_counter() - t0
    mb = faiss.serialize_index(index).nbytes / 2**20
    faiss.omp_set_num_threads(1)
    ivf = faiss.extract_index_ivf(index)

    def configs() -> Iterator[tuple[dict[str, Any], Search]]:
        # Parameters are set once per configuration, outside the timed per-query call.
        for nprobe in (2, 4, 8, 16, 32, 64, 128):
            if nprobe > nlist:
                continue
            for k_factor in (8, 32, 128):
                ivf.nprobe = nprobe
                index.k_factor = k_factor
                yield (
                    {"nlist": nlist, "nprobe": nprobe, "k_factor": k_factor},
                    lambda q: index.search(q[None], K)[1][0],
                )

    return build_s, mb, configs()


def hnswlib_method(ds: Dataset) -> tuple[float, float, Iterator[tuple[dict[str, Any], Search]]]:
    import hnswlib

    n, d = ds.db.shape
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
    index.set_num_threads(BUILD_THREADS)
    index.add_items(ds.db, np.arange(n))
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        index.save_index(f"{tmp}/h.bin")
        mb = _dir_mb(Path(tmp))
    index.set_num_threads(1)

    def configs() -> Iterator[tuple[dict[str, Any], Search]]:
        for ef in (10, 20, 40, 80, 160, 320):
            index.set_ef(ef)
            yield (
                {"M": 16, "ef_construction": 100, "ef": ef},
                lambda q: index.knn_query(q, k=K)[0][0],
            )

    return build_s, mb, configs()


METHODS = {
    "ScaNN [tree]+AH+reorder": scann_method,
    "FAISS IVF-PQ fast-scan+refine": faiss_ivfpq_method,
    "hnswlib HNSW": hnswlib_method,
}


def measure(search: Search, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(recall@K, QPS) with one query per call, after a short warm-up."""
    for q in queries[: min(50, len(queries))]:
        search(q)
    found = np.full(truth.shape, -1, dtype=np.int64)
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        ids = np.asarray(search(q))
        found[i, : len(ids)] = ids
    elapsed = time.perf_counter() - t0
    return recall_at_k(found, truth), len(queries) / elapsed


def run_dataset(ds: Dataset, log: Callable[[str], None] = print) -> list[MethodResult]:
    results = []
    for name, method in METHODS.items():
        build_s, mb, configs = method(ds)
        res = MethodResult(name, build_s, mb)
        log(f"[{ds.name}] {name}: build {build_s:.1f} s, index {mb:.0f} MB")
        for params, search in configs:
            recall, qps = measure(search, ds.queries, ds.truth)
            res.points.append(Point(name, params, recall, qps))
            log(f"    {params}: recall@10 {recall:.3f}  {qps:,.0f} QPS")
        results.append(res)
    return results


def best_qps_at(points: list[Point], target: float) -> Point | None:
    """Fastest measured configuration reaching the recall target (no interpolation)."""
    ok = [p for p in points if p.recall >= target]
    return max(ok, key=lambda p: p.qps) if ok else None


def table(results: list[MethodResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row: dict[str, Any] = {"method": r.method, "build_s": r.build_s, "index_mb": r.index_mb}
        for t in RECALL_TARGETS:
            best = best_qps_at(r.points, t)
            row[f"qps_at_{t:.2f}"] = best.qps if best else None
            row[f"params_at_{t:.2f}"] = best.params if best else None
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| method | build s | index MB | "
        + " | ".join(f"QPS @ recall {t:.2f}" for t in RECALL_TARGETS)
        + " |"
    )
    lines = [head, "|---|---:|---:|" + "---:|" * len(RECALL_TARGETS)]
    for r in rows:
        cells = [
            f"{r[f'qps_at_{t:.2f}']:,.0f}" if r[f"qps_at_{t:.2f}"] else "not reached"
            for t in RECALL_TARGETS
        ]
        lines.append(
            f"| {r['method']} | {r['build_s']:.1f} | {r['index_mb']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--synthetic-n", type=int, default=100_000, help="0 skips the synthetic set")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--skip-movielens", action="store_true")
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    p.add_argument("--bundles", type=Path, default=Path("bundles"))
    p.add_argument("--out", type=Path, default=Path("loadtest/results/ann.json"))
    p.add_argument("--png", type=Path, help="default: --out with .png")
    args = p.parse_args(argv)

    datasets: list[Callable[[], Dataset]] = []
    if not args.skip_movielens:
        datasets.append(lambda: movielens(args.bundles, args.data_dir, args.queries))
    if args.synthetic_n > 0:
        datasets.append(lambda: synthetic_clustered(args.synthetic_n, args.dim, args.queries))
    doc: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(
                [Path(sys.executable).name, "-m", "loadtest.ann_bench", *sys.argv[1:]]
            ),
            "machine": f"{platform.node()} {os.cpu_count()} CPUs",
            "k": K,
            "batch_size": 1,
            "search_threads": 1,
            "build_threads": BUILD_THREADS,
        },
        "datasets": [],
    }
    for make in datasets:
        ds = make()
        results = run_dataset(ds)
        rows = table(results)
        print(markdown_table(rows))
        doc["datasets"].append(
            {
                "name": ds.name,
                "note": ds.note,
                "n": int(ds.db.shape[0]),
                "dim": int(ds.db.shape[1]),
                "queries": int(ds.queries.shape[0]),
                "methods": [asdict(r) for r in results],
                "table": rows,
                "table_md": markdown_table(rows),
            }
        )
        del ds
    doc["meta"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    from loadtest import plots

    plots.plot_ann(doc, args.png or args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
