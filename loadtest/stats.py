"""Latency percentiles and Prometheus histogram arithmetic used by every benchmark."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least q % of samples <= it
    (numpy's ``inverted_cdf`` method). The one definition every benchmark and chaos summary
    uses.

    Chosen over interpolation because it is always an observed latency and never
    under-reports the tail (p99 of 100 samples is the 99th, not a blend of 99th and 100th).
    """
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan
    # q / 100 rounded: 99.9 / 100 is a hair above 0.999 in binary, which would move the
    # p99.9 of 1000 samples from the 999th to the 1000th.
    return float(np.quantile(arr, round(q / 100.0, 9), method="inverted_cdf"))


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_s: Sequence[float] | np.ndarray) -> LatencySummary:
        arr = np.asarray(latencies_s, dtype=np.float64) * 1e3
        if arr.size == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        p50, p95, p99, p999 = (percentile(arr, q) for q in PERCENTILES)
        return cls(int(arr.size), float(arr.mean()), p50, p95, p99, p999, float(arr.max()))


# --- Prometheus text exposition --------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def parse_exposition(text: str) -> Samples:
    """Flatten a /metrics page into {(sample name, sorted labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def delta(after: Samples, before: Samples) -> Samples:
    """Counter/histogram increase between two scrapes (a series absent before started at 0)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def sum_samples(samples: Samples, name: str, **match: str) -> float:
    """Sum of every series of `name` whose labels include `match`."""
    total = 0.0
    for (n, labels), v in samples.items():
        if n == name and all(dict(labels).get(k) == val for k, val in match.items()):
            total += v
    return total


def label_values(samples: Samples, name: str, label: str) -> list[str]:
    return sorted({dict(lb)[label] for (n, lb) in samples if n == name and label in dict(lb)})


@dataclass(frozen=True)
class HistogramDelta:
    """One histogram series' increase over a measurement window."""

    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last
    count: float
    total: float

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan

    def quantile(self, q: float) -> float:
        return histogram_quantile(q, self.buckets)


def histogram(samples: Samples, name: str, **match: str) -> HistogramDelta:
    """Aggregate the `name` histogram over all series matching `match` (summing buckets)."""
    per_le: dict[float, float] = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == f"{name}_bucket" and all(d.get(k) == val for k, val in match.items()):
            le = float(d["le"])
            per_le[le] = per_le.get(le, 0.0) + v
    buckets = tuple(sorted(per_le.items()))
    return HistogramDelta(
        buckets=buckets,
        count=sum_samples(samples, f"{name}_count", **match),
        total=sum_samples(samples, f"{name}_sum", **match),
    )


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets.

    Linear interpolation inside the bucket holding the rank; the first bucket starts at 0;
    a rank in the +Inf bucket returns the highest finite bound, as Prometheus does.
    """
    bs = sorted(buckets)
    if not bs or not math.isinf(bs[-1][0]):
        raise ValueError("histogram needs a +Inf bucket")
    total = bs[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for i, (bound, count) in enumerate(bs):
        if count >= rank:
            if math.isinf(bound):
                return bs[i - 1][0] if i > 0 else math.nan
            if i == 0 and bound <= 0:
                return bound
            in_bucket = count - prev_count
            if in_bucket <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket
        prev_bound, prev_count = bound, count
    return bs[-2][0] if len(bs) > 1 else math.nan


def interpolate_curve(x: float, points: Mapping[float, float]) -> float:
    """Piecewise-linear y(x) through measured points.

    Clamps below the first point; beyond the last one there is no measurement, so the
    caller gets inf and must treat it as overload rather than extrapolate.
    """
    xs = sorted(points)
    if not xs:
        raise ValueError("empty curve")
    if x <= xs[0]:
        return points[xs[0]]
    for a, b in itertools.pairwise(xs):
        if x <= b:
            return points[a] + (points[b] - points[a]) * (x - a) / (b - a)
    return math.inf
