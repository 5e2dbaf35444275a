"""Dashboards, alerts and adapter queries evaluated by a real Prometheus server.

Here the targets are emulated exporters (recserve.cluster.metrics_sim) exporting the metric
names of docs/contracts.md; `make dashboards-check DASH_TARGETS=...` runs the same check
against the running stack.
"""

from __future__ import annotations

import shutil

import pytest

from recserve.cluster import chart
from recserve.cluster import dashboards_check as dc

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus binary missing"
)


@pytest.fixture(scope="module")
def groups() -> dict:
    return chart.rule_groups(chart.objects(chart.render({}, namespace="recserve")))


def test_every_query_returns_data(groups: dict) -> None:
    with dc.simulated_targets(duration_s=120) as targets:
        report = dc.run_check(targets, "recserve", groups, warmup_s=4)
    print(report.summary())
    assert report.ok, report.summary()
    by_status: dict[str, list[str]] = {}
    for r in report.results:
        by_status.setdefault(r.status, []).append(r.query.source)
    # only kube-state-metrics panels lack data outside a cluster; alerts do not fire
    assert all("HPA" in s for s in by_status.get("cluster-only", [])), by_status
    assert len(by_status.get("cluster-only", [])) == 4
    assert all(s.startswith("alert") for s in by_status.get("not-firing", []))
    n_dash = len(dc.dashboard_queries())
    assert len(by_status["ok"]) >= n_dash - 4 + len(dc.adapter_queries("recserve"))


def test_check_fails_when_a_service_is_not_scraped(groups: dict) -> None:
    """Proof that the check bites: without ranking's endpoint its panels have no data."""
    with dc.simulated_targets(duration_s=60) as targets:
        some = [t for t in targets if t.service != "ranking"]
        with dc.Prometheus(some, "recserve", groups) as prom:
            assert prom.wait_for(f"count(up == 1) == {len(some)}", 30)
            assert prom.wait_for("count(rate(recserve_rpc_total[1m]))", 30)
            queries = [q for q in dc.dashboard_queries() if q.source.startswith("stage-ranking")]
            report = dc.evaluate(prom, queries, "recserve")
    empty = [r.query.source for r in report.failures]
    assert any("Server-side latency" in s for s in empty), report.summary()
    assert not report.ok


def test_metric_names_parser() -> None:
    expr = (
        '(sum by (service) (rate(recserve_rpc_total{namespace="x", code=~"A|B"}[5m])) or '
        'sum by (service) (rate(recserve_rpc_total{namespace="x"}[5m])) * 0) / on (namespace) '
        "histogram_quantile(0.99, sum by (le) (rate(recserve_stage_duration_seconds_bucket[1m]))) "
        "and recserve:rpc_requests:rate5m > 0"
    )
    assert dc.metric_names(expr) == {
        "recserve_rpc_total",
        "recserve_stage_duration_seconds_bucket",
        "recserve:rpc_requests:rate5m",
    }
