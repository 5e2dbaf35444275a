"""Candidate search latency with 0 / 1k / 10k cold-start items in the side index, and the cost
of adding one item, on a trained bundle (the newest under --bundles).

    python -m tools.side_index_bench --bundles bundles [--queries 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recserve.candidates.search import CandidateQuery, search
from recserve.candidates.side_index import SideIndex
from recserve.model.bundle import load_bundle, newest_version
from recserve.vectors import encode_vector


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.side_index_bench", description=__doc__)
    parser.add_argument("--bundles", type=Path, default=Path("bundles"))
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    bundle = load_bundle(args.bundles / newest_version(args.bundles), parts={"index", "vectors"})
    rng = np.random.default_rng(args.seed)
    rows = rng.integers(0, len(bundle.item_ids), args.queries)
    queries = [CandidateQuery(encode_vector(bundle.input_vectors[r]), "", [], 100) for r in rows]
    print(f"bundle {bundle.version}: {len(bundle.item_ids)} items, dim {bundle.dim}")
    for size in (0, 1_000, 10_000):
        side = SideIndex(bundle.dim)
        started = time.perf_counter()
        for i in range(size):
            base = bundle.scoring_vectors[i % len(bundle.item_ids)]
            side.put(f"cold-{i}", base, base + rng.normal(0, 0.01, bundle.dim).astype(np.float32))
        add_us = (time.perf_counter() - started) / max(size, 1) * 1e6
        latencies = []
        for query in queries:
            t = time.perf_counter()
            search(bundle, [query], max_candidates=1000, side=side if size else None)
            latencies.append(time.perf_counter() - t)
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        print(
            f"side items {size:>6}: search p50 {p50:.3f} ms, p99 {p99:.3f} ms; add {add_us:.1f} us/item"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
