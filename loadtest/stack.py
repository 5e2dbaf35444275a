"""Where to send load: an explicit address, env, or the local stack's run/stack.json.

Also starts the bare echo server the benchmarks compare against.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from recserve.client.options import TARGET_ENV

# Env names shared by the locust file, the benchmark and mk/bench.mk (the target's is the
# client's, RECSERVE_TARGET).
STACK_JSON_ENV = "RECSERVE_STACK_JSON"
DEFAULT_STACK_JSON = Path("run/stack.json")
AUTH_TOKEN_ENV = "RECSERVE_AUTH_TOKEN"
TLS_CA_ENV = "RECSERVE_TLS_CA_FILE"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stack:
    """A gRPC target plus, when it is the local stack, what to account CPU and metrics from."""

    target: str
    pids: dict[str, int] = field(default_factory=dict)
    gateway_metrics: str | None = None  # host:port serving /metrics
    bundle: str | None = None

    @classmethod
    def from_json(cls, path: Path) -> Stack:
        raw = json.loads(path.read_text())
        metrics = raw.get("metrics") or {}
        return cls(
            target=raw["gateway"],
            pids={name: int(pid) for name, pid in (raw.get("pids") or {}).items() if pid},
            gateway_metrics=metrics.get("gateway"),
            bundle=raw.get("bundle"),
        )


def resolve(target: str | None = None, stack_json: Path | None = None) -> Stack:
    """Explicit target > $RECSERVE_TARGET > stack json ($RECSERVE_STACK_JSON or run/stack.json).

    A bare address (a cluster, a port-forward) carries no pids: CPU accounting is then skipped.
    """
    explicit = target or os.environ.get(TARGET_ENV)
    if explicit:
        return Stack(target=explicit)
    path = stack_json or Path(os.environ.get(STACK_JSON_ENV, DEFAULT_STACK_JSON))
    if not path.exists():
        raise SystemExit(
            f"no target: set {TARGET_ENV}=host:port or start the stack (`make up` writes {path})"
        )
    return Stack.from_json(path)


def call_metadata() -> tuple[tuple[str, str], ...]:
    token = os.environ.get(AUTH_TOKEN_ENV)
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_credentials() -> grpc.ChannelCredentials | None:
    """TLS when a CA file is configured (cluster ingress); plaintext for the local stack."""
    ca = os.environ.get(TLS_CA_ENV)
    if not ca:
        return None
    return grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes())


@contextlib.contextmanager
def echo_server(start_timeout_s: float = 20.0) -> Iterator[Stack]:
    """Run loadtest.echo_server in a child process for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="recserve-echo-") as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest.echo_server", "--port-file", str(port_file)],
            cwd=REPO_ROOT,
        )
        try:
            deadline = time.monotonic() + start_timeout_s
            while not port_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("echo server did not start")
                time.sleep(0.05)
            yield Stack(target=f"127.0.0.1:{port_file.read_text()}", pids={"echo": proc.pid})
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
