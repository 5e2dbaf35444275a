"""`make up` / `make down` as processes: starts everything, shows recommendations, stops exactly it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recserve.devstack.stack import free_port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_up_then_down(tmp_path: Path, bundles: Path) -> None:
    run_dir = tmp_path / "run"
    ports = [
        arg
        for name in ("redis", "gateway", "embedding-store", "candidates", "ranking")
        for arg in (f"--{name}-port", str(free_port()))
    ]
    devstack = [sys.executable, "-m", "recserve.devstack"]
    common = ["--run-dir", str(run_dir), "--bundles", str(bundles)]
    up = subprocess.run(
        [*devstack, "up", *common, *ports, "--metrics-base-port", "0"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert up.returncode == 0, up.stderr[-2000:]
    assert "Top 5 for user" in up.stdout
    assert "grpcurl" in up.stdout
    info = json.loads((run_dir / "stack.json").read_text())
    pids = [pid for pid in info["pids"].values() if pid]
    assert len(pids) == 5 and all(alive(pid) for pid in pids)

    down = subprocess.run(
        [*devstack, "down", *common], capture_output=True, text=True, timeout=60, check=False
    )
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in pids)
