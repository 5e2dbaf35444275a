"""The installed `recserve` console script: --help, --version, unknown commands, and a
command whose optional extra is missing."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

RECSERVE = Path(sys.executable).with_name("recserve")
COMMANDS = ("train", "publish", "gc", "synth", "cluster", "client", "devstack")


def recserve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECSERVE), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_help_lists_every_command_with_a_summary() -> None:
    out = recserve("--help")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for command in COMMANDS:
        line = next((ln for ln in lines if ln.split()[:1] == [command]), None)
        assert line and len(line.split()) > 1, f"no summary line for {command}:\n{out.stdout}"


def test_version_is_the_installed_distribution_version() -> None:
    out = recserve("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"recserve {importlib.metadata.version('recserve')}"


def test_unknown_or_missing_command_prints_usage_and_exits_2() -> None:
    for args in (["no-such-command"], []):
        out = recserve(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("usage: recserve"), out.stderr


def test_command_arguments_reach_the_command() -> None:
    out = recserve("train", "--help")
    assert out.returncode == 0, out.stderr
    assert "--bundles" in out.stdout


def test_cluster_without_the_kubernetes_client_names_the_extra() -> None:
    # sys.modules[name] = None makes `import kubernetes` raise ModuleNotFoundError.
    code = (
        "import sys; sys.modules['kubernetes'] = None; from recserve.cli import main; "
        "sys.exit(main(['cluster', 'status']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pip install 'recserve[cluster]'" in out.stderr, out.stderr
