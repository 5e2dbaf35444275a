"""Chooses and tunes the ScaNN configuration for a catalog: the cheapest searcher that reaches
recall@k >= target against exact dot-product search, measured on real query vectors.

By catalog size: < 20k items brute force (exact); < 100k AH + exact reorder; larger a tree
(~sqrt(n) leaves) + AH + reorder. Search-time knobs (leaves to search, reorder depth) are
tuned without rebuilding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from recserve.model.ann import MAX_K, AnnConfig, AnnIndex, AnnKind

BRUTE_FORCE_BELOW = 20_000
AH_BELOW = 100_000


def exact_topk(queries: np.ndarray, vectors: np.ndarray, k: int, chunk: int = 16_384) -> np.ndarray:
    """int64 [b, k] indices of the exact top-k by dot product (item chunks bound memory)."""
    k = min(k, vectors.shape[0])
    b = queries.shape[0]
    best_idx = np.zeros((b, 0), dtype=np.int64)
    best_val = np.zeros((b, 0), dtype=np.float32)
    for lo in range(0, vectors.shape[0], chunk):
        scores = queries @ vectors[lo : lo + chunk].T
        idx = np.concatenate(
            [best_idx, np.broadcast_to(np.arange(lo, lo + scores.shape[1]), scores.shape)], axis=1
        )
        val = np.concatenate([best_val, scores], axis=1)
        if val.shape[1] > k:
            top = np.argpartition(-val, k - 1, axis=1)[:, :k]
            idx, val = np.take_along_axis(idx, top, axis=1), np.take_along_axis(val, top, axis=1)
        best_idx, best_val = idx, val
    order = np.argsort(-best_val, axis=1, kind="stable")
    return np.take_along_axis(best_idx, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = [np.intersect1d(f[:k], t).size for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


def measure(
    index: AnnIndex, queries: np.ndarray, truth: np.ndarray, latency_queries: int = 200
) -> dict[str, float]:
    k = truth.shape[1]
    found, _ = index.search_batched(queries, k)
    timings = []
    for q in queries[:latency_queries]:
        start = time.perf_counter()
        index.search_batched(q[None, :], k)
        timings.append(time.perf_counter() - start)
    ms = np.asarray(timings) * 1000.0
    return {
        f"recall@{k}": recall_at_k(found, truth),
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
    }


def default_config(n: int) -> AnnConfig:
    if n < BRUTE_FORCE_BELOW:
        return AnnConfig(kind="brute_force")
    if n < AH_BELOW:
        return AnnConfig(kind="ah", reorder_num_neighbors=400)
    leaves = max(2, round(math.sqrt(n)))
    return AnnConfig(
        kind="tree_ah",
        num_leaves=leaves,
        leaves_to_search=max(1, leaves // 20),
        reorder_num_neighbors=400,
    )


def config_for(n: int, kind: AnnKind | None = None) -> AnnConfig:
    """The default configuration for n items, or for a forced kind."""
    config = default_config(n)
    if kind is None or kind == config.kind:
        return config
    if kind == "tree_ah":
        leaves = max(2, round(math.sqrt(n)))
        return AnnConfig(
            kind="tree_ah", num_leaves=leaves, leaves_to_search=1, reorder_num_neighbors=400
        )
    return AnnConfig(kind=kind, reorder_num_neighbors=400 if kind == "ah" else 0)


def build_index(vectors: np.ndarray, config: AnnConfig) -> tuple[AnnIndex, float]:
    started = time.perf_counter()
    index = AnnIndex.build(vectors, config)
    return index, time.perf_counter() - started


# A leaf count that adds less recall than this is a plateau: AH, not partitioning, limits it.
_PLATEAU = 0.002


def tune_search(
    index: AnnIndex,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    target_recall: float = 0.95,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[AnnIndex, dict[str, Any]]:
    """Cheapest search-time setting (reorder depth, leaves to search) reaching the target
    recall@k against exact search, on `queries` (float32 [b, d])."""
    n = index.size
    k = min(k, MAX_K, n)
    config = index.config
    truth = exact_topk(queries, vectors, k)
    trials: list[dict[str, Any]] = []
    if config.kind == "brute_force":
        chosen = measure(index, queries, truth)
        trials.append({**chosen})
    else:
        reorders = sorted({min(n, r) for r in (k, 2 * k, 4 * k, 8 * k, 16 * k)})
        leaf_options = [0]
        if config.kind == "tree_ah":
            leaves = config.num_leaves
            fractions = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)
            leaf_options = sorted({max(1, min(leaves, math.ceil(leaves * f))) for f in fractions})
        best: tuple[float, AnnConfig, dict[str, float]] | None = None
        for reorder in reorders:
            previous = -1.0
            for leaves_to_search in leaf_options:
                candidate = replace(
                    config, reorder_num_neighbors=reorder, leaves_to_search=leaves_to_search
                )
                result = measure(index.with_config(candidate), queries, truth)
                trials.append(
                    {
                        "reorder_num_neighbors": reorder,
                        "leaves_to_search": leaves_to_search,
                        **result,
                    }
                )
                recall = result[f"recall@{k}"]
                if recall >= target_recall:
                    if best is None or result["latency_p50_ms"] < best[0]:
                        best = (result["latency_p50_ms"], candidate, result)
                    break  # more leaves only cost time at this reorder depth
                if recall - previous < _PLATEAU:
                    break  # a deeper reorder is needed, not more leaves
                previous = recall
            if best is not None and best[1].leaves_to_search == leaf_options[0]:
                break  # deeper reorders only add cost to the cheapest partition setting
        if best is None:
            # Nothing reached the target: take the most accurate setting and say so.
            top = max(trials, key=lambda t: t[f"recall@{k}"])
            config = replace(
                config,
                reorder_num_neighbors=top["reorder_num_neighbors"],
                leaves_to_search=top["leaves_to_search"],
            )
            chosen = {key: top[key] for key in (f"recall@{k}", "latency_p50_ms", "latency_p99_ms")}
            say(f"ANN: no setting reached recall {target_recall}; best {chosen[f'recall@{k}']:.3f}")
        else:
            _, config, chosen = best
        index = index.with_config(config)
    report = {
        "k": k,
        "target_recall": target_recall,
        "queries": int(queries.shape[0]),
        **{key: round(value, 4) for key, value in chosen.items()},
        "trials": trials,
    }
    say(
        f"ANN {config.kind}: recall@{k} {chosen[f'recall@{k}']:.3f}, "
        f"p50 {chosen['latency_p50_ms']:.3f} ms, p99 {chosen['latency_p99_ms']:.3f} ms"
    )
    return index, report


def tune_index(
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    target_recall: float = 0.95,
    kind: AnnKind | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[AnnIndex, dict[str, Any]]:
    """Builds the searcher chosen by catalog size (or `kind`) and tunes its search."""
    config = config_for(vectors.shape[0], kind)
    index, seconds = build_index(vectors, config)
    say(f"ANN {config.kind} over {vectors.shape[0]:,} items built in {seconds:.1f}s")
    index, report = tune_search(index, vectors, queries, k, target_recall=target_recall, say=say)
    return index, {"build_seconds": round(seconds, 3), **report}
