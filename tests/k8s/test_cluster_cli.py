"""`recserve cluster` against recorded-shape API responses (no live cluster)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from recserve.cluster import (
    DESIRED_VERSION_ANNOTATION,
    ClusterApis,
    RolloutError,
    release_status,
    rollout,
    wait_for_job,
    wait_for_version,
)
from recserve.cluster.__main__ import main
from recserve.cluster.ops import model_versions_from_metrics

from .fake_kube import Call, FakeRest, api_client, default_cluster, fixture

NS = "/namespaces/recserve"


def apis_for(fake: FakeRest) -> ClusterApis:
    return ClusterApis.from_api_client(api_client(fake))


def test_status_reports_replicas_hpa_and_versions() -> None:
    fake = default_cluster()
    st = release_status(apis_for(fake), "recserve", "recserve")

    by = {s.name: s for s in st.services}
    assert set(by) == {"gateway", "embedding_store", "candidates", "ranking"}
    gw = by["gateway"]
    assert (gw.ready, gw.desired, gw.hpa_min, gw.hpa_current, gw.hpa_desired, gw.hpa_max) == (
        4,
        4,
        3,
        4,
        5,
        30,
    )
    metrics = {m.name: (m.current, m.target) for m in gw.metrics}
    assert metrics == {"recserve_requests_per_second": ("120", "139"), "cpu": ("81%", "60%")}
    # candidates: one pod Pending (unschedulable), its metrics are not read
    cand = by["candidates"]
    assert cand.ready == 2 and [p.phase for p in cand.pods].count("Pending") == 1
    assert all(p.model_versions == ["20250601-1000"] for p in cand.pods if p.phase == "Running")
    # ranking: one pod still on the previous version
    assert sorted(v for p in by["ranking"].pods for v in p.model_versions) == [
        "20250601-0900",
        "20250601-1000",
    ]
    assert st.versions() == {"20250601-0900", "20250601-1000"}
    # redis is not a serving pod; selectors are label-based
    assert all(p.service != "redis" for s in st.services for p in s.pods)
    list_calls = [c for c in fake.calls if c.path.endswith(("/deployments", "/pods"))]
    assert all(
        c.query["labelSelector"]
        == ["app.kubernetes.io/name=recserve,app.kubernetes.io/instance=recserve"]
        for c in list_calls
    )
    # metrics were read through the API server pod proxy on the metrics port
    proxied = [c.path for c in fake.calls if "/proxy/" in c.path]
    assert len(proxied) == 10 and all(":9464/proxy/metrics" in p for p in proxied)


def test_status_survives_unreadable_pod_metrics() -> None:
    fake = FakeRest().on("GET", f"/api/v1{NS}/pods/[^/]+/proxy/metrics", (403, {"kind": "Status"}))
    default_cluster(fake)  # earlier routes win: every proxy call is forbidden
    st = release_status(apis_for(fake), "recserve", "recserve")
    running = [p for s in st.services for p in s.pods if p.phase == "Running"]
    assert running and all(p.error == "metrics: HTTP 403 Forbidden" for p in running)


def test_status_cli_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    fake = default_cluster()
    assert main(["status", "-n", "recserve"], apis_factory=lambda _a: apis_for(fake)) == 0
    out = capsys.readouterr().out
    assert (
        "gateway" in out and "3/4/5/30" in out and "recserve_requests_per_second: 120 / 139" in out
    )
    assert "20250601-0900" in out and "Pending" in out
    assert main(["status", "-o", "json"], apis_factory=lambda _a: apis_for(fake)) == 0
    data = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in data["services"]} == {
        "gateway",
        "embedding_store",
        "candidates",
        "ranking",
    }


def _rollout_cluster(job_states: list[str]) -> FakeRest:
    fake = default_cluster()
    created: dict[str, Any] = {}

    def create_job(call: Call) -> tuple[int, Any]:
        created["body"] = call.body
        job = fixture("job-created.json")
        return 201, job

    states = iter(job_states)

    def read_job(_call: Call) -> tuple[int, Any]:
        return 200, fixture(f"job-{next(states)}.json")

    def patch_cron(call: Call) -> tuple[int, Any]:
        cron = copy.deepcopy(fixture("cronjobs.json")["items"][0])
        cron["metadata"].setdefault("annotations", {}).update(call.body["metadata"]["annotations"])
        return 200, cron

    fake.on("POST", f"/apis/batch/v1{NS}/jobs", create_job)
    fake.on("GET", f"/apis/batch/v1{NS}/jobs/[^/]+/status", read_job)
    fake.on("PATCH", f"/apis/batch/v1{NS}/cronjobs/recserve-trainer", patch_cron)
    fake.created = created  # type: ignore[attr-defined]
    return fake


def test_rollout_creates_publish_only_job_from_cronjob() -> None:
    fake = _rollout_cluster([])
    job = rollout(apis_for(fake), "recserve", "recserve", "20250601-1000")
    assert job.metadata.name == "recserve-trainer-rollout-x7k2p"

    body = fake.created["body"]  # type: ignore[attr-defined]
    assert body["metadata"]["generateName"] == "recserve-trainer-rollout-"
    assert body["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert body["metadata"]["annotations"][DESIRED_VERSION_ANNOTATION] == "20250601-1000"
    assert body["metadata"]["labels"]["recserve.io/model-version"] == "20250601-1000"
    pod = body["spec"]["template"]["spec"]
    assert "initContainers" not in pod  # no training, publish only
    (publish,) = pod["containers"]
    assert publish["command"][:4] == ["python", "-m", "recserve.training", "publish"]
    assert publish["args"][-2:] == ["--version", "20250601-1000"]
    # the chart's hardening survives the copy
    assert publish["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert body["spec"]["template"]["metadata"]["labels"]["recserve.io/redis-client"] == "true"

    patch = next(c for c in fake.calls if c.method == "PATCH")
    ann = patch.body["metadata"]["annotations"]
    assert ann[DESIRED_VERSION_ANNOTATION] == "20250601-1000"
    assert ann["recserve.io/last-rollout-job"].startswith("recserve-trainer-rollout-x7k2p ")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".."])
def test_rollout_rejects_bad_versions(bad: str) -> None:
    with pytest.raises(RolloutError):
        rollout(apis_for(_rollout_cluster([])), "recserve", "recserve", bad)


def test_rollout_without_trainer_cronjob_fails_clearly() -> None:
    fake = FakeRest().on(
        "GET", f"/apis/batch/v1{NS}/cronjobs", (200, {"kind": "CronJobList", "items": []})
    )
    with pytest.raises(RolloutError, match=r"trainer\.enabled"):
        rollout(apis_for(fake), "recserve", "recserve", "v1")


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_wait_for_job_complete_and_failed() -> None:
    clock = FakeClock()
    fake = _rollout_cluster(["running", "running", "complete"])
    wait_for_job(apis_for(fake), "recserve", "j", timeout_s=60, sleep=clock.sleep, clock=clock)
    assert clock.t == 4.0
    fake = _rollout_cluster(["running", "failed"])
    with pytest.raises(RolloutError, match="BackoffLimitExceeded"):
        wait_for_job(apis_for(fake), "recserve", "j", timeout_s=60, sleep=clock.sleep, clock=clock)
    fake = _rollout_cluster(["running"] * 100)
    with pytest.raises(RolloutError, match="did not finish"):
        wait_for_job(apis_for(fake), "recserve", "j", timeout_s=10, sleep=clock.sleep, clock=clock)


def test_wait_for_version_names_lagging_pods() -> None:
    clock = FakeClock()
    fake = default_cluster()
    with pytest.raises(RolloutError, match=r"recserve-ranking-7d9f8c6b5-bx1z"):
        wait_for_version(
            apis_for(fake),
            "recserve",
            "recserve",
            "20250601-1000",
            timeout_s=3,
            sleep=clock.sleep,
            clock=clock,
        )
    # restricted to services that are all on the version: returns at once
    st = wait_for_version(
        apis_for(fake),
        "recserve",
        "recserve",
        "20250601-1000",
        timeout_s=3,
        services=["candidates", "gateway"],
        sleep=clock.sleep,
        clock=clock,
    )
    assert st.services


def test_rollout_cli_wait(capsys: pytest.CaptureFixture[str]) -> None:
    fake = _rollout_cluster(["complete"])
    # every pod reports the new version after the publish job
    metrics = fixture("pod-metrics.json")
    for k in metrics:
        metrics[k] = metrics[k].replace("20250601-0900", "20250601-1000")
    fake.routes.insert(
        0,
        (
            "GET",
            __import__("re").compile(rf"/api/v1{NS}/pods/([^/:]+):9464/proxy/metrics$"),
            lambda c: (200, metrics[c.path.split("/pods/")[1].split(":")[0]]),
        ),
    )
    rc = main(
        ["rollout", "--version", "20250601-1000", "--wait", "--timeout", "30"],
        apis_factory=lambda _a: apis_for(fake),
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "job recserve-trainer-rollout-x7k2p created" in out and "complete" in out


def test_cli_reports_api_errors(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeRest()  # nothing routed: every call is a 404
    assert main(["rollout", "--version", "v1"], apis_factory=lambda _a: apis_for(fake)) == 2
    assert "Kubernetes API error 404" in capsys.readouterr().err


def test_model_versions_from_metrics_ignores_inactive_series() -> None:
    text = (
        "# TYPE recserve_model_info gauge\n"
        'recserve_model_info{version="b"} 1.0\n'
        'recserve_model_info{version="a"} 0.0\n'
    )
    assert model_versions_from_metrics(text) == ["b"]


def test_cronjob_fixture_matches_the_chart() -> None:
    """The rollout copies the chart's CronJob; the fixture must be that CronJob
    (regenerate with tests/k8s/fixtures/generate.py after chart changes)."""
    from tools import chart

    (cron,) = [
        o for o in chart.objects(chart.render({}, namespace="recserve")) if o["kind"] == "CronJob"
    ]
    assert fixture("cronjobs.json")["items"][0]["spec"] == cron["spec"]
