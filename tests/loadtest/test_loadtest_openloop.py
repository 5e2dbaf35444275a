import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from loadtest import openloop, stack, stats
from loadtest.workload import RequestFactory, load_catalog


def test_h2load_log_reconstruction_adds_back_send_delay() -> None:
    # Due every 10 ms; h2load held requests 4..8 back and sent them together at 80 ms.
    starts = np.array([0.0, 0.01, 0.02, 0.03, 0.08, 0.08, 0.08, 0.08, 0.08, 0.09])
    elapsed = np.full(10, 0.002)
    shuffle = np.random.default_rng(0).permutation(10)
    lat, lag = openloop.reconstruct_latency(starts[shuffle], elapsed[shuffle])
    assert lag.tolist() == pytest.approx([0, 0, 0, 0, 0.04, 0.03, 0.02, 0.01, 0, 0])
    assert lat[4] == pytest.approx(0.042)
    _, even_lag = openloop.reconstruct_latency(np.arange(5) * 0.01, np.full(5, 0.003))
    assert even_lag.tolist() == pytest.approx([0.0] * 5)
    assert openloop.grpc_frame(b"ab") == b"\x00\x00\x00\x00\x02ab"


def step(
    rate: float, p99_ms: float, errors: int = 0, achieved: float | None = None
) -> openloop.StepResult:
    lat = stats.LatencySummary(100, p99_ms / 2, p99_ms / 2, p99_ms, p99_ms, p99_ms, p99_ms)
    return openloop.StepResult(
        offered_qps=rate,
        achieved_qps=rate if achieved is None else achieved,
        requests=100,
        errors=errors,
        error_codes={},
        degraded_fraction=0.0,
        latency=lat,
        send_lag_p99_ms=0.0,
        window_s=1.0,
        generator="fake",
        generator_cpu_ms_per_req=0.0,
        generator_cores=0.0,
        stack_cpu_ms_per_req=1.0,
        stack_cpu_ms_per_req_by_process={},
        stack_cores=0.1,
        machine_busy_cores=0.1,
        other_cores=0.0,
    )


def model(knee: float) -> Callable[[float], openloop.StepResult]:
    """p99 10 ms below the knee, then climbing 1 ms per QPS."""
    return lambda r: step(r, 10.0 + max(0.0, r - knee))


def test_step_search_brackets_each_slo() -> None:
    measured: list[float] = []

    def measure(r: float) -> openloop.StepResult:
        measured.append(r)
        return model(500.0)(r)

    steps, best = openloop.step_search(measure, 100, 2.0, 10_000, [200.0, 50.0], refine=6)
    # Limits: p99 <= 50 up to rate 540, <= 200 up to rate 690.
    assert best[50.0] is not None and 500 <= best[50.0] <= 540
    assert best[200.0] is not None and 640 <= best[200.0] <= 690
    assert [s.offered_qps for s in steps] == sorted(set(measured))
    assert max(measured) <= 10_000


def test_step_search_errors_and_throughput_fail_a_step() -> None:
    assert not step(100, 5.0, errors=1).passes(200)
    assert not step(100, 5.0, achieved=90.0).passes(200)
    assert step(100, 5.0, achieved=96.0).passes(200)
    # A lucky pass above a failure is not capacity.
    results = {100.0: step(100, 5), 200.0: step(200, 500), 300.0: step(300, 5)}
    assert openloop.best_rate(results, 50) == 100.0
    _, best = openloop.step_search(model(0.0), 300, 2.0, 10_000, [50.0], refine=0)
    assert best[50.0] is None


def test_step_search_never_exceeds_max_rate() -> None:
    steps, best = openloop.step_search(model(1e9), 100, 2.0, 1000, [50.0], refine=3)
    assert [s.offered_qps for s in steps] == [100, 200, 400, 800]
    assert best[50.0] == 800


@pytest.mark.parametrize("kind", ["python", "h2load"])
def test_runner_against_echo_server(kind: str) -> None:
    if kind == "h2load" and shutil.which("h2load") is None:
        pytest.skip("h2load (nghttp2-client) not installed")
    pool = list(RequestFactory(load_catalog(), seed=1).recommend_pool(20))
    with stack.echo_server() as echo:
        gen = openloop.make_generator(kind, echo.target, pool, workers=2, timeout_s=5.0)
        try:
            # The quiet-machine protocol is tested below; here the step must run whatever
            # else the test machine does.
            anything = openloop.QuietPolicy(max_other_cores=float("inf"), probe_s=0.1)
            res = openloop.Runner(echo, gen, duration_s=1.0, quiet=anything).measure(40.0)
        finally:
            gen.close()
    assert res.requests == 40
    assert res.errors == 0
    assert res.generator == kind
    assert res.stack_cpu_ms_per_req is not None and res.stack_cpu_ms_per_req >= 0
    assert set(res.stack_cpu_ms_per_req_by_process) == {"echo"}
    assert res.latency.count == 40


class ScriptedRunner(openloop.Runner):
    """A Runner whose machine readings are scripted: (before the step, during the step)."""

    def __init__(self, readings: list[tuple[float, float]], quiet: openloop.QuietPolicy):
        super().__init__(stack.Stack(target="-", pids={}), None, 1.0, quiet)  # type: ignore[arg-type]
        self.readings = readings
        self.steps = 0

    def other_cores_now(self) -> float:
        return self.readings[min(self.steps, len(self.readings) - 1)][0]

    def _measure_once(self, rate: float) -> openloop.StepResult:
        during = self.readings[min(self.steps, len(self.readings) - 1)][1]
        self.steps += 1
        return openloop.StepResult(
            offered_qps=rate, achieved_qps=rate, requests=10, errors=0, error_codes={},
            degraded_fraction=0.0, latency=stats.LatencySummary.of(np.full(10, 0.001)),
            send_lag_p99_ms=0.0, window_s=1.0, generator="x", generator_cpu_ms_per_req=0.0,
            generator_cores=0.0, stack_cpu_ms_per_req=1.0, stack_cpu_ms_per_req_by_process={},
            stack_cores=0.1, machine_busy_cores=0.1 + during, other_cores=during,
        )  # fmt: skip


def test_noisy_step_is_retried_and_a_quiet_retry_is_recorded() -> None:
    quiet = openloop.QuietPolicy(max_other_cores=0.15, retries=3, max_wait_s=0.0)
    runner = ScriptedRunner([(0.0, 0.9), (0.5, 0.0), (0.05, 0.05)], quiet)
    res = runner.measure(100.0)
    # attempt 1 noisy during the step, attempt 2 noisy before it, attempt 3 quiet
    assert (res.valid, res.attempts, runner.steps) == (True, 3, 3)
    assert res.passes(50.0)


def test_never_quiet_marks_the_step_invalid_and_not_passing() -> None:
    quiet = openloop.QuietPolicy(max_other_cores=0.15, retries=2, max_wait_s=0.0)
    runner = ScriptedRunner([(1.0, 1.0)], quiet)
    res = runner.measure(100.0)
    assert (res.valid, res.attempts, runner.steps) == (False, 3, 3)
    assert not res.passes(1e9)


BURNER = """
import subprocess, sys
child = '''
import os, sys, time
ready, go, burned = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
t = time.process_time()
while time.process_time() - t < 0.4:
    pass
open(burned, "w").close()
time.sleep(60)
'''
subprocess.run([sys.executable, "-c", child, *sys.argv[1:]])
"""


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def test_cpu_snapshot_counts_descendants_and_the_machine(tmp_path: Path) -> None:
    # A parent that only waits and a child that burns 0.4 s of CPU between the snapshots: the
    # parent's group is charged the child's CPU (services may fork workers), the machine at
    # least that, and a process that does not exist nothing.
    ready, go, burned = (tmp_path / name for name in ("ready", "go", "burned"))
    parent = subprocess.Popen([sys.executable, "-c", BURNER, str(ready), str(go), str(burned)])
    groups = {"tree": [parent.pid], "gone": [2**22 + 1]}
    try:
        wait_for(ready)
        before = openloop.CpuSnapshot.take(groups)
        go.touch()
        wait_for(burned)
        delta = openloop.CpuSnapshot.take(groups).minus(before)
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
    assert 0.35 <= delta.groups["tree"] < 2.0
    assert delta.groups["gone"] == 0.0
    assert delta.machine_busy >= 0.9 * delta.groups["tree"]
