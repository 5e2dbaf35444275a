"""Starts redis-server and the four services as background processes (logs and pid files under a
run directory), waits until each reports SERVING, and stops exactly those processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICES = ("embedding_store", "candidates", "ranking", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class StackPorts:
    redis: int = 6380
    gateway: int = 50051
    embedding_store: int = 50052
    candidates: int = 50053
    ranking: int = 50054
    metrics: Mapping[str, int] = field(
        default_factory=lambda: {
            "gateway": 9464, "embedding_store": 9465, "candidates": 9466, "ranking": 9467,
        }
    )  # fmt: skip

    @classmethod
    def free(cls) -> StackPorts:
        return cls(
            redis=free_port(),
            gateway=free_port(),
            embedding_store=free_port(),
            candidates=free_port(),
            ranking=free_port(),
            metrics={name: free_port() for name in SERVICES},
        )

    def grpc(self, service: str) -> int:
        return int(getattr(self, service))


def wait_for_redis(client: redis.Redis, timeout_s: float = 10.0) -> None:
    """Returns once a just-started redis-server answers PING."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_serving(
    address: str,
    timeout_s: float,
    service: str = "readiness",
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = RuntimeError(
                    f"status {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
                )
            except grpc.RpcError as exc:
                last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{address} not SERVING after {timeout_s:.0f} s: {last}")


class Stack:
    """One local stack rooted at `run_dir` (stack.json, pids/, logs/, redis/)."""

    def __init__(
        self,
        run_dir: Path | str,
        bundles_dir: Path | str,
        ports: StackPorts | None = None,
        *,
        redis_password: str | None = None,
        redis_appendfsync: str = "always",
        channel_credentials: grpc.ChannelCredentials | None = None,
    ):
        self.run_dir = Path(run_dir).resolve()
        self.bundles_dir = Path(bundles_dir).resolve()
        self.ports = ports or StackPorts()
        self.python = sys.executable
        # Redis AUTH: services get it as RECSERVE_REDIS_PASSWORD, never inside the URL.
        self.redis_password = redis_password
        # AOF fsync policy: "always" acknowledges a write only once it is on disk, so a crash
        # of Redis or of the machine loses nothing acknowledged; "everysec" is ~3x cheaper per
        # write but a machine crash loses up to ~2 s of them (docs/reliability.md).
        self.redis_appendfsync = redis_appendfsync
        # For health checks when the services serve TLS (None: plaintext).
        self.channel_credentials = channel_credentials

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def admin_redis_url(self) -> str:
        """The URL with the password, for local tools (publish, tests)."""
        if self.redis_password is None:
            return self.redis_url
        return f"redis://:{quote(self.redis_password, safe='')}@127.0.0.1:{self.ports.redis}/0"

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports.grpc(service)}"

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / "pids" / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        path = self._pid_file(name)
        return int(path.read_text()) if path.exists() else None

    def service_env(self, service: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The caller's environment (OTEL_* included: tracing is set up the same way for every
        service) with the stack's RECSERVE_* settings and `extra` on top. OTEL_SERVICE_NAME is
        left out unless `extra` sets it: each service names itself (recserve-<service>), and
        one name for all four would merge them in a trace view."""
        env = {k: v for k, v in os.environ.items() if k != "OTEL_SERVICE_NAME"}
        env.update(
            {
                "RECSERVE_HOST": "127.0.0.1",
                "RECSERVE_GRPC_PORT": str(self.ports.grpc(service)),
                "RECSERVE_METRICS_PORT": str(self.ports.metrics[service]),
                "RECSERVE_REDIS_URL": self.redis_url,
                "RECSERVE_BUNDLE_DIR": str(self.bundles_dir),
                "RECSERVE_EMBEDDING_STORE_ADDR": self.address("embedding_store"),
                "RECSERVE_CANDIDATES_ADDR": self.address("candidates"),
                "RECSERVE_RANKING_ADDR": self.address("ranking"),
                "RECSERVE_MODEL_POLL_INTERVAL_S": env.get("RECSERVE_MODEL_POLL_INTERVAL_S", "1"),
                "RECSERVE_SHUTDOWN_GRACE_S": env.get("RECSERVE_SHUTDOWN_GRACE_S", "5"),
            }
        )
        if self.redis_password is not None:
            env["RECSERVE_REDIS_PASSWORD"] = self.redis_password
        env.update(extra or {})
        return env

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> int:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
        )
        log.close()
        self._pid_file(name).write_text(str(process.pid))
        return process.pid

    def start_redis(self) -> None:
        data_dir = self.run_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "redis",
            [
                "redis-server", "--port", str(self.ports.redis), "--bind", "127.0.0.1",
                "--dir", str(data_dir), "--appendonly", "yes",
                "--appendfsync", self.redis_appendfsync, "--save", "", "--daemonize", "no",
                *(["--requirepass", self.redis_password] if self.redis_password else []),
            ],
            os.environ,
        )  # fmt: skip
        wait_for_redis(redis.Redis.from_url(self.admin_redis_url, socket_connect_timeout=0.2))

    def start_service(self, service: str, extra_env: Mapping[str, str] | None = None) -> int:
        return self._spawn(
            service,
            [self.python, "-m", f"recserve.{service}"],
            self.service_env(service, extra_env),
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        for service in SERVICES:
            wait_serving(self.address(service), timeout_s, credentials=self.channel_credentials)

    def newest_bundle(self) -> Path | None:
        versions = sorted(
            p for p in self.bundles_dir.glob("*") if p.is_dir() and (p / "manifest.json").exists()
        )
        return versions[-1] if versions else None

    def train(self, extra_args: list[str] | None = None) -> None:
        subprocess.run(
            [self.python, "-m", "recserve.training", "train", "--bundles", str(self.bundles_dir),
             *(extra_args or [])],
            check=True,
        )  # fmt: skip

    def publish(self, version: str | None = None) -> None:
        argv = [self.python, "-m", "recserve.training", "publish", "--bundles", str(self.bundles_dir),
                "--redis-url", self.admin_redis_url]  # fmt: skip
        if version:
            argv += ["--version", version]
        subprocess.run(argv, check=True)

    def up(
        self, *, train_args: list[str] | None = None, extra_env: Mapping[str, str] | None = None
    ) -> dict[str, object]:
        if self.newest_bundle() is None:
            self.train(train_args)
        self.start_redis()
        self.publish()
        for service in SERVICES:
            self.start_service(service, extra_env)
        self.wait_ready()
        info = self.info()
        (self.run_dir / "stack.json").write_text(json.dumps(info, indent=2))
        return info

    def info(self) -> dict[str, object]:
        newest = self.newest_bundle()
        return {
            **{service: self.address(service) for service in SERVICES},
            "redis_url": self.redis_url,
            "metrics": {s: f"127.0.0.1:{p}" for s, p in self.ports.metrics.items()},
            "pids": {name: self.pid(name) for name in ("redis", *SERVICES)},
            "bundle": str(newest) if newest else None,
            "ports": asdict(self.ports),
        }

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        pid = self.pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            self._pid_file(name).unlink(missing_ok=True)
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
                if finished:
                    break
            except ChildProcessError:
                # Not our child (`make down` from another process): poll for existence.
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self._pid_file(name).unlink(missing_ok=True)

    def down(self) -> None:
        # SIGTERM every service first so their shutdown delays and drains overlap; Redis last.
        for name in SERVICES:
            pid = self.pid(name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for name in (*reversed(SERVICES), "redis"):
            self.stop_process(name)

    @classmethod
    def from_run_dir(cls, run_dir: Path | str) -> Stack:
        info = json.loads((Path(run_dir) / "stack.json").read_text())
        ports = info["ports"]
        return cls(
            run_dir,
            Path(info["bundle"]).parent if info["bundle"] else "bundles",
            StackPorts(**ports),
        )
