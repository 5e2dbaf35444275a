"""`recserve cluster` against recorded-shape API responses (no live cluster)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
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

from .fake_kube import Call, FakePods, FakeRest, api_client, default_cluster, fixture

NS = "/namespaces/recserve"


@pytest.fixture
def pods() -> Iterator[FakePods]:
    pods = FakePods()
    yield pods
    pods.close()


def apis_for(fake: FakeRest, pods: FakePods | None = None) -> ClusterApis:
    apis = ClusterApis.from_api_client(api_client(fake))
    apis.dial = (pods or FakePods({})).dial
    return apis


def test_status_reports_replicas_hpa_and_versions(pods: FakePods) -> None:
    fake = default_cluster()
    st = release_status(apis_for(fake, pods), "recserve", "recserve")

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
    # candidates: one pod Pending (unschedulable), it is not asked
    cand = by["candidates"]
    assert cand.ready == 2 and [p.phase for p in cand.pods].count("Pending") == 1
    running = [p for p in cand.pods if p.phase == "Running"]
    assert [p.active_version for p in running] == ["20250601-1000"] * len(running)
    assert all(p.model_versions == ["20250601-1000"] for p in running)
    # ranking: one pod still on the previous version
    assert sorted(p.active_version or "" for p in by["ranking"].pods) == [
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
    # each running serving pod was asked over a stream to its gRPC port, nothing else
    assert sorted(pod for _, pod, _ in pods.dialed) == sorted(pods.versions)
    assert {(ns, port) for ns, _, port in pods.dialed} == {("recserve", 50051)}
    assert not [c for c in fake.calls if "/proxy/" in c.path]


def test_status_reports_pods_that_cannot_be_reached() -> None:
    fake = default_cluster()
    pods = FakePods({"recserve-gateway-7d9f8c6b5-ax0z": "v1"})
    try:
        st = release_status(apis_for(fake, pods), "recserve", "recserve")
    finally:
        pods.close()
    running = {p.name: p for s in st.services for p in s.pods if p.phase == "Running"}
    reached = running.pop("recserve-gateway-7d9f8c6b5-ax0z")
    assert (reached.active_version, reached.error) == ("v1", None)
    assert running and all(
        p.active_version is None and p.error == f"model info: pod {p.name} has no port 50051"
        for p in running.values()
    )


def test_status_cli_text_and_json(capsys: pytest.CaptureFixture[str], pods: FakePods) -> None:
    fake = default_cluster()
    assert main(["status", "-n", "recserve"], apis_factory=lambda _a: apis_for(fake, pods)) == 0
    out = capsys.readouterr().out
    assert (
        "gateway" in out and "3/4/5/30" in out and "recserve_requests_per_second: 120 / 139" in out
    )
    assert "20250601-0900" in out and "Pending" in out
    assert main(["status", "-o", "json"], apis_factory=lambda _a: apis_for(fake, pods)) == 0
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


def test_wait_for_version_names_lagging_pods(pods: FakePods) -> None:
    clock = FakeClock()
    fake = default_cluster()
    with pytest.raises(RolloutError, match=r"recserve-ranking-7d9f8c6b5-bx1z"):
        wait_for_version(
            apis_for(fake, pods),
            "recserve",
            "recserve",
            "20250601-1000",
            timeout_s=3,
            sleep=clock.sleep,
            clock=clock,
        )
    # restricted to services that are all on the version: returns at once
    st = wait_for_version(
        apis_for(fake, pods),
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
    # every pod answers with the new version after the publish job
    pods = FakePods({pod: "20250601-1000" for pod in FakePods().versions})
    try:
        rc = main(
            ["rollout", "--version", "20250601-1000", "--wait", "--timeout", "30"],
            apis_factory=lambda _a: apis_for(fake, pods),
        )
    finally:
        pods.close()
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "job recserve-trainer-rollout-x7k2p created" in out and "complete" in out


def test_cli_reports_api_errors(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeRest()  # nothing routed: every call is a 404
    assert main(["rollout", "--version", "v1"], apis_factory=lambda _a: apis_for(fake)) == 2
    assert "Kubernetes API error 404" in capsys.readouterr().err


def test_cronjob_fixture_matches_the_chart() -> None:
    """The rollout copies the chart's CronJob; the fixture must be that CronJob
    (regenerate with tests/k8s/fixtures/generate.py after chart changes)."""
    from tools import chart

    (cron,) = [
        o for o in chart.objects(chart.render({}, namespace="recserve")) if o["kind"] == "CronJob"
    ]
    assert fixture("cronjobs.json")["items"][0]["spec"] == cron["spec"]
