"""Dashboards, alerts and adapter queries evaluated by a real Prometheus server.

Here the targets are emulated exporters (tools.metrics_sim: the services' own metric objects
and proto method names), labelled by the chart's ServiceMonitor relabelings;
`make dashboards-check DASH_TARGETS=...` runs the same check against the running stack.
"""

from __future__ import annotations

import shutil

import pytest

from tools import dashboards_check as dc

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus binary missing"
)
STAGE_COMPONENTS = {"embedding_store", "candidates", "ranking"}


@pytest.fixture(scope="module")
def setup() -> dc.ScrapeSetup:
    return dc.ScrapeSetup.render("recserve")


def test_every_query_returns_data(setup: dc.ScrapeSetup) -> None:
    with dc.simulated_targets(duration_s=120) as targets:
        report = dc.run_check(targets, "recserve", setup, warmup_s=4)
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
    # the stage dashboard is checked once per value of its `component` variable
    stage = {s.split(" / ")[0] for s in by_status["ok"] if s.startswith("stage")}
    assert stage == {f"stage[component={c}]" for c in STAGE_COMPONENTS}


def test_component_label_comes_from_the_service_monitor(setup: dc.ScrapeSetup) -> None:
    """The exporters carry no component label; scraping with the ServiceMonitor's
    relabelings gives every series (process_* included) its target's component."""
    with (
        dc.simulated_targets(duration_s=60) as targets,
        dc.Prometheus(targets, "recserve", setup) as prom,
    ):
        assert prom.wait_for(f"count(up == 1) == {len(targets)}", 30)
        assert prom.wait_for("count(process_cpu_seconds_total)", 30)
        for metric in ("process_cpu_seconds_total", "recserve_rpc_total", "recserve_model_info"):
            got = {s["metric"].get("component") for s in prom.query(metric)}
            assert got == {t.component for t in targets}, (metric, got)
        services = {
            s["metric"]["grpc_service"]
            for s in prom.query('recserve_rpc_total{component="ranking"}')
        }
        assert services == {"recserve.v1.RankingService"}
    bare = dc.ScrapeSetup(setup.rule_groups, [], setup.pod_labels)
    with (
        dc.simulated_targets(duration_s=60) as targets,
        dc.Prometheus(targets, "recserve", bare) as prom,
    ):
        assert prom.wait_for(f"count(up == 1) == {len(targets)}", 30)
        assert prom.wait_for("count(recserve_rpc_total)", 30)
        assert not prom.query('recserve_rpc_total{component!=""}')


def test_check_fails_when_a_service_is_not_scraped(setup: dc.ScrapeSetup) -> None:
    """Proof that the check bites: without ranking's endpoint its panels have no data."""
    with dc.simulated_targets(duration_s=60) as targets:
        some = [t for t in targets if t.component != "ranking"]
        with dc.Prometheus(some, "recserve", setup) as prom:
            assert prom.wait_for(f"count(up == 1) == {len(some)}", 30)
            # Every scraped target has two samples (rates exist), or its panels look empty too.
            assert prom.wait_for(f"count(rate(process_cpu_seconds_total[1m])) == {len(some)}", 30)
            assert prom.wait_for("count(rate(recserve_rpc_total[1m]))", 30)
            queries = dc.dashboard_queries()
            report = dc.evaluate(prom, queries, "recserve")
    empty = {r.query.source for r in report.failures}
    assert "stage[component=ranking] / Server-side latency p50 / p95 / p99 by method [A]" in empty
    assert not any(s.startswith("stage[component=candidates]") for s in empty), empty
    assert not report.ok


def test_metric_names_parser() -> None:
    expr = (
        '(sum by (component) (rate(recserve_rpc_total{namespace="x", grpc_code=~"A|B"}[5m])) or '
        'sum by (component) (rate(recserve_rpc_total{namespace="x"}[5m])) * 0) / on (namespace) '
        "histogram_quantile(0.99, sum by (le) (rate(recserve_stage_duration_seconds_bucket[1m]))) "
        "and recserve:rpc_requests:rate5m > 0"
    )
    assert dc.metric_names(expr) == {
        "recserve_rpc_total",
        "recserve_stage_duration_seconds_bucket",
        "recserve:rpc_requests:rate5m",
    }
