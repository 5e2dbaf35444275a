import math

import numpy as np
import pytest

from loadtest import stats


def test_nearest_rank_percentiles_by_hand() -> None:
    values = list(range(100, 0, -1))  # 1..100, unsorted on purpose
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 99) == 99
    assert stats.percentile(values, 99.9) == 100
    assert stats.percentile(values, 100) == 100
    assert stats.percentile(list(range(1, 11)), 95) == 10  # rank ceil(9.5) = 10
    assert stats.percentile([7.0], 99) == 7.0
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError):
        stats.percentile([1.0], 0)


def test_latency_summary_converts_seconds_to_ms() -> None:
    s = stats.LatencySummary.of(np.arange(1, 1001) / 1000.0)
    assert (s.count, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms) == (1000, 500, 990, 999, 1000)
    assert s.mean_ms == pytest.approx(500.5)
    assert stats.LatencySummary.of([]).count == 0


BUCKETS = [(0.01, 10.0), (0.05, 60.0), (0.1, 90.0), (math.inf, 100.0)]


def test_histogram_quantile_matches_prometheus_by_hand() -> None:
    # rank 50 falls in (0.01, 0.05] holding 50 samples, 40 of them below the rank.
    assert stats.histogram_quantile(0.5, BUCKETS) == pytest.approx(0.01 + 0.04 * 40 / 50)
    assert stats.histogram_quantile(0.05, BUCKETS) == pytest.approx(0.005)  # first bucket from 0
    assert stats.histogram_quantile(0.99, BUCKETS) == 0.1  # +Inf bucket: highest finite bound
    assert math.isnan(stats.histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))
    with pytest.raises(ValueError):
        stats.histogram_quantile(0.5, [(1.0, 1.0)])


EXPOSITION_BEFORE = """\
# TYPE recserve_stage_duration_seconds histogram
recserve_stage_duration_seconds_bucket{stage="candidates",le="0.01"} 5
recserve_stage_duration_seconds_bucket{stage="candidates",le="0.05"} 5
recserve_stage_duration_seconds_bucket{stage="candidates",le="+Inf"} 5
recserve_stage_duration_seconds_sum{stage="candidates"} 0.02
recserve_stage_duration_seconds_count{stage="candidates"} 5
# TYPE recserve_degraded_total counter
recserve_degraded_total{reason="cold_start"} 3
"""

EXPOSITION_AFTER = """\
# TYPE recserve_stage_duration_seconds histogram
recserve_stage_duration_seconds_bucket{stage="candidates",le="0.01"} 15
recserve_stage_duration_seconds_bucket{stage="candidates",le="0.05"} 25
recserve_stage_duration_seconds_bucket{stage="candidates",le="+Inf"} 25
recserve_stage_duration_seconds_sum{stage="candidates"} 0.42
recserve_stage_duration_seconds_count{stage="candidates"} 25
recserve_stage_duration_seconds_bucket{stage="ranking",le="0.01"} 4
recserve_stage_duration_seconds_bucket{stage="ranking",le="0.05"} 4
recserve_stage_duration_seconds_bucket{stage="ranking",le="+Inf"} 4
recserve_stage_duration_seconds_sum{stage="ranking"} 0.008
recserve_stage_duration_seconds_count{stage="ranking"} 4
# TYPE recserve_degraded_total counter
recserve_degraded_total{reason="cold_start"} 5
recserve_degraded_total{reason="ranking_unavailable"} 1
"""


def test_exposition_delta_and_histogram_window() -> None:
    d = stats.delta(
        stats.parse_exposition(EXPOSITION_AFTER), stats.parse_exposition(EXPOSITION_BEFORE)
    )
    assert stats.sum_samples(d, "recserve_degraded_total") == 3  # 2 + a new series from 0
    assert stats.label_values(d, "recserve_stage_duration_seconds_bucket", "stage") == [
        "candidates",
        "ranking",
    ]
    h = stats.histogram(d, "recserve_stage_duration_seconds", stage="candidates")
    assert (h.count, h.total) == (20, pytest.approx(0.4))
    assert h.mean == pytest.approx(0.02)
    # 10 in the first bucket, 10 in the second: the median is the first bucket's top.
    assert h.quantile(0.5) == pytest.approx(0.01)
    both = stats.histogram(d, "recserve_stage_duration_seconds")
    assert both.count == 24


def test_interpolate_curve() -> None:
    curve = {0.2: 2.0, 0.6: 10.0}
    assert stats.interpolate_curve(0.1, curve) == 2.0
    assert stats.interpolate_curve(0.4, curve) == pytest.approx(6.0)
    assert stats.interpolate_curve(0.7, curve) == math.inf


def test_stage_breakdown_from_gateway_histograms() -> None:
    from loadtest.openloop import stage_breakdown

    d = stats.delta(
        stats.parse_exposition(EXPOSITION_AFTER), stats.parse_exposition(EXPOSITION_BEFORE)
    )
    out = stage_breakdown(d)
    assert set(out) == {"candidates", "ranking"}
    assert out["candidates"]["count"] == 20
    assert out["candidates"]["mean_ms"] == pytest.approx(20.0)
    assert out["ranking"]["p50_ms"] == pytest.approx(5.0)  # 4 samples in (0, 10 ms]
