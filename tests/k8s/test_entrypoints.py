"""Every command the chart and the image run exists (docs/contracts.md entrypoints), and each
gRPC service starts, reports `liveness` SERVING, and stops on SIGTERM within its grace.

The serving code (recserve.runtime, recserve.<service>, recserve.training, recserve.client)
is written in parallel with the chart: while a module is absent its test is an expected
failure (xfail) naming what is missing, and it turns into a real check when it lands.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import REPO_ROOT, chart

SERVICES = ("gateway", "embedding_store", "candidates", "ranking")


def chart_modules() -> dict[str, set[str]]:
    """module -> argv[3:4] subcommands seen, over all scenarios, Dockerfile CMD included."""
    mods: dict[str, set[str]] = {}
    for name in chart.SCENARIOS:
        from .semantics import workloads

        for w in workloads(chart.objects(chart.render_scenario(name))):
            for c in w.containers():
                cmd = c.get("command") or []
                if cmd[:2] == ["python", "-m"]:
                    mods.setdefault(cmd[2], set()).update(cmd[3:4])
    cmd = re.search(
        r'^CMD \["python", "-m", "([\w.]+)"\]', (REPO_ROOT / "Dockerfile").read_text(), re.M
    )
    assert cmd
    mods.setdefault(cmd.group(1), set())
    return mods


def test_chart_uses_the_contract_entrypoints() -> None:
    mods = chart_modules()
    assert set(mods) == {
        *(f"recserve.{s}" for s in SERVICES),
        "recserve.training",
        "recserve.client",
    }
    assert mods["recserve.training"] == {"train", "publish"}
    assert mods["recserve.client"] == {"recommend"}


def _require(module: str) -> None:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        pytest.xfail(f"{module} does not exist yet (serving/training code in progress)")


@pytest.mark.parametrize(
    "module", sorted({*(f"recserve.{s}" for s in SERVICES), "recserve.training", "recserve.client"})
)
def test_entrypoint_exists(module: str) -> None:
    _require(f"{module}.__main__")


@pytest.mark.parametrize(
    ("module", "subcommands"),
    [("recserve.training", ["train", "publish"]), ("recserve.client", ["recommend"])],
)
def test_cli_entrypoints_parse_the_chart_arguments(module: str, subcommands: list[str]) -> None:
    """The one-shot commands (trainer Job, helm test pod) answer --help for what the chart runs."""
    _require(f"{module}.__main__")
    for sub in subcommands:
        out = subprocess.run(
            [sys.executable, "-m", module, sub, "--help"],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout[-1000:] + out.stderr[-2000:]
        if module == "recserve.training":
            assert "--bundles" in out.stdout, out.stdout
        if sub == "publish":
            assert "--version" in out.stdout and "--redis-url" in out.stdout, out.stdout
        if sub == "recommend":
            assert "--target" in out.stdout and "--user-id" in out.stdout, out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("service", SERVICES)
def test_service_starts_live_not_ready_and_drains(service: str, tmp_path: Path) -> None:
    """Without Redis or a bundle the process must still serve `liveness` (so the kubelet does
    not restart it while it waits for a model), keep `readiness` NOT_SERVING, and exit on
    SIGTERM within RECSERVE_SHUTDOWN_GRACE_S + margin (the chart's terminationGracePeriod)."""
    _require(f"recserve.{service}")
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    grpc_port, metrics_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "RECSERVE_GRPC_PORT": str(grpc_port),
        "RECSERVE_METRICS_PORT": str(metrics_port),
        "RECSERVE_REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0",  # nothing listens there
        "RECSERVE_BUNDLE_DIR": str(tmp_path),
        "RECSERVE_SHUTDOWN_GRACE_S": "2",
        "RECSERVE_EMBEDDING_STORE_ADDR": f"127.0.0.1:{_free_port()}",
        "RECSERVE_CANDIDATES_ADDR": f"127.0.0.1:{_free_port()}",
        "RECSERVE_RANKING_ADDR": f"127.0.0.1:{_free_port()}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", f"recserve.{service}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            deadline, live = time.monotonic() + 30, None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    live = stub.Check(
                        health_pb2.HealthCheckRequest(service="liveness"), timeout=1
                    ).status
                    break
                except grpc.RpcError:
                    time.sleep(0.2)
            assert live == health_pb2.HealthCheckResponse.SERVING, "liveness never SERVING"
            ready = stub.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=1).status
            assert ready != health_pb2.HealthCheckResponse.SERVING, "ready without a model"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=2 + 5)
        assert rc == 0 and time.monotonic() - t0 < 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
