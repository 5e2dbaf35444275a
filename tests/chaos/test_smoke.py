"""A short chaos scenario on a real two-replica cluster, so the harness cannot rot between
`make chaos` runs. Correctness only (no latency or "not degraded" assertions): the full suite
with its figures is `make chaos` (docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

from chaos.bundles import read_catalog, versions_in
from chaos.cluster import Cluster
from chaos.oracle import Oracle
from chaos.scenarios import Harness, kill_replicas


def test_kill_one_replica_of_each_service_loses_nothing(
    catalog_bundles: Path, tmp_path: Path
) -> None:
    version = versions_in(catalog_bundles)[0]
    cluster = Cluster(
        tmp_path / "cluster",
        catalog_bundles,
        env={"RECSERVE_LOG_LEVEL": "WARNING", "RECSERVE_MODEL_POLL_INTERVAL_S": "0.5"},
    )
    cluster.start(version)
    try:
        users, items = read_catalog(catalog_bundles / version)
        oracle = Oracle({version: catalog_bundles / version}, cluster.redis_client(), users)
        harness = Harness(cluster, oracle, users, items, [version], tmp_path, rate=20, quick=True)
        result = kill_replicas(harness)
        alive = {r.name: cluster.alive(r.name) for r in cluster.all_replicas()}
    finally:
        cluster.down()
    assert all(alive.values()), alive
    checks = {c.name: c for c in result.checks}
    for name in (
        "0 failed requests",
        "0 wrong answers (offline pipeline of the version named)",
        "0 acknowledged writes lost",
        "every killed replica back in rotation",
    ):
        assert checks[name].passed, f"{name}: {checks[name].detail}"
    assert result.load["all"]["sent"] > 100
    assert result.figures["answers"]["full_answers_checked"] > 50
