"""Summaries of load records and of Prometheus histograms."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaos.load import Record
from loadtest import stats as loadtest_stats

READS = ("recommend", "similar")


def percentiles_ms(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p99 (nearest rank, `loadtest.stats.percentile`) and max of latencies in s, as ms."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(loadtest_stats.percentile(values, 50) * 1000, 1),
        "p99": round(loadtest_stats.percentile(values, 99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


def summarize(records: Iterable[Record], budget_s: float, slack_s: float) -> dict[str, Any]:
    """Counts and latencies per operation and in total.

    failed = final status not OK (after the client's retries); first_attempt_failed = the
    first attempt was not OK; over_budget = answered later than budget + slack after its
    scheduled time (client-observed, generator delay included)."""
    by_op: dict[str, list[Record]] = {}
    everything: list[Record] = []
    for record in records:
        by_op.setdefault(record.op, []).append(record)
        everything.append(record)
    out: dict[str, Any] = {op: _summary(rs, budget_s, slack_s) for op, rs in sorted(by_op.items())}
    out["all"] = _summary(everything, budget_s, slack_s)
    out["reads"] = _summary([r for r in everything if r.op in READS], budget_s, slack_s)
    out["anomalies"] = anomalies(everything)
    return out


def anomalies(records: Sequence[Record], limit: int = 10) -> list[dict[str, Any]]:
    """The first few requests that were degraded or not OK at the first attempt, with the
    reason, at seconds since the first scheduled request (to match a scenario's timeline)."""
    if not records:
        return []
    origin = min(r.t for r in records)
    return [
        {
            "t_s": round(r.t - origin, 3),
            "op": r.op,
            "code": r.code,
            "first_code": r.first_code,
            "attempts": r.attempts,
            "degraded": r.degraded,
            "detail": r.detail,
        }
        for r in records
        if r.degraded not in ("", "cold_start") or r.first_code != "OK"
    ][:limit]


def _summary(records: Sequence[Record], budget_s: float, slack_s: float) -> dict[str, Any]:
    failed = Counter(r.code for r in records if r.code != "OK")
    first = Counter(r.first_code for r in records if r.first_code != "OK")
    degraded = Counter(r.degraded for r in records if r.code == "OK" and r.degraded)
    limit = budget_s + slack_s
    return {
        "sent": len(records),
        "ok": sum(1 for r in records if r.code == "OK"),
        "failed": sum(failed.values()),
        "failed_codes": dict(failed),
        "first_attempt_failed": sum(first.values()),
        "first_attempt_codes": dict(first),
        "retried": sum(1 for r in records if r.attempts > 1),
        "degraded": sum(degraded.values()),
        "degraded_reasons": dict(degraded),
        "over_budget": sum(1 for r in records if r.latency > limit),
        "latency_ms": percentiles_ms([r.latency for r in records]),
        "send_lag_ms": percentiles_ms([r.send_lag for r in records]),
    }


# --- Prometheus histograms ---------------------------------------------------------------------


def histogram_buckets(
    samples: Mapping[str, float], name: str, labels: Mapping[str, str]
) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of one labelled histogram from scraped samples."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    buckets: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for key, value in samples.items():
        if not key.startswith(prefix):
            continue
        parts = set(key[len(prefix) : -1].split(","))
        if not wanted <= parts:
            continue
        le = next(p for p in parts if p.startswith("le="))[4:-1]
        bound = math.inf if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + value
    return buckets


def histogram_delta(
    after: Mapping[float, float], before: Mapping[float, float]
) -> dict[float, float]:
    return {le: after[le] - before.get(le, 0.0) for le in after}


def histogram_quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Quantile q (seconds) of cumulative {le: count} buckets by Prometheus' interpolation
    (`loadtest.stats.histogram_quantile`); None when the histogram is empty."""
    if not buckets:
        return None
    value = loadtest_stats.histogram_quantile(q, buckets.items())
    return None if math.isnan(value) else value


def merge_buckets(parts: Iterable[Mapping[float, float]]) -> dict[float, float]:
    merged: dict[float, float] = {}
    for part in parts:
        for le, count in part.items():
            merged[le] = merged.get(le, 0.0) + count
    return merged
