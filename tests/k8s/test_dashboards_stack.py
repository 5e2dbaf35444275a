"""Dashboards, alerts and adapter queries against the REAL stack under load.

Trains a small synthetic bundle (with tests/integration's helper, so there is one way to do
that), starts redis-server + the four services with recserve.devstack, sends Recommend calls,
and runs the same check as `make dashboards-check` with a real Prometheus scraping the
services' /metrics.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from recserve.cluster import chart
from recserve.cluster import dashboards_check as dc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus binary missing"),
]


def test_dashboards_against_running_stack(tmp_path: Path) -> None:
    from integration.conftest import train  # tests/integration: the shared small-bundle trainer

    from recserve.devstack import Stack, StackPorts

    bundles = tmp_path / "bundles"
    try:
        train(bundles)
    except subprocess.CalledProcessError as e:
        pytest.xfail(f"training a bundle failed (training CLI in progress): {e}")
    stack = Stack(tmp_path / "run", bundles, StackPorts.free())
    try:
        info = stack.up(extra_env={"RECSERVE_LOG_LEVEL": "WARNING"})
        metrics: dict[str, str] = info["metrics"]  # type: ignore[assignment]
        targets = [dc.Target(svc, addr) for svc, addr in metrics.items()]
        groups = chart.rule_groups(chart.objects(chart.render({}, namespace="recserve")))
        with dc.background_load(stack.address("gateway"), max_seconds=90) as counts:
            report = dc.run_check(targets, "recserve", groups, warmup_s=6)
    finally:
        stack.down()
    print(report.summary(), counts)
    assert counts["ok"] > 50 and counts["error"] == 0, counts
    assert {r.status for r in report.results} <= {"ok", "cluster-only", "not-firing", "empty"}
    empty = {r.query.source for r in report.failures}
    if empty and empty <= KNOWN_GAPS and not report.missing_metrics:
        pytest.xfail(f"embedding_store exports no recserve_model_info/_reloads: {sorted(empty)}")
    assert report.ok, report.summary()


# Panels the running services do not feed yet (reported to the serving owner): the
# embedding store reads versioned Redis keys and exports no model version/reload metrics.
KNOWN_GAPS = {
    "stage-embedding-store / Model version per pod [A]",
    "stage-embedding-store / Model reloads by outcome [A]",
}
