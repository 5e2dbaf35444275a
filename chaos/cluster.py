"""Redis, dnsmasq and N replicas of every service as local processes.

Replica i of every service listens on 127.0.0.{2+i} (the whole 127/8 is loopback on Linux),
all replicas of one service on the same gRPC port, so one DNS name with N A records
addresses them all, as a Kubernetes headless Service does. The gateways reach the backends
through `dns://127.0.0.1:<dnsmasq>/<service>.recserve.test:<port>` with round_robin, client
health checking and the retry policy of `recserve.gateway.backends`; the load generator
reaches the gateways the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from chaos import dns
from recserve.devstack.stack import SERVICES, Stack, StackPorts, wait_serving

DOMAIN = "recserve.test"


def replica_host(index: int) -> str:
    return f"127.0.0.{2 + index}"


def free_port_on(hosts: list[str]) -> int:
    """A TCP port free on every host."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts}")


@dataclass(frozen=True)
class Replica:
    service: str
    index: int
    host: str
    port: int
    metrics_port: int

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def dns_name(service: str) -> str:
    return f"{service.replace('_', '-')}.{DOMAIN}"


@dataclass
class Cluster:
    run_dir: Path
    bundles_dir: Path
    replicas_per_service: int = 2
    # Redis AOF fsync policy; "always" = an acknowledged write is on disk.
    appendfsync: str = "always"
    # Extra RECSERVE_* settings for every service.
    env: Mapping[str, str] = field(default_factory=dict)
    # "dns" (dnsmasq, default when installed) or "static" (an ipv4: address list).
    resolver: str = "auto"

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir).resolve()
        self.stack = Stack(
            self.run_dir, self.bundles_dir, StackPorts.free(), redis_appendfsync=self.appendfsync
        )
        hosts = [replica_host(i) for i in range(self.replicas_per_service)]
        self.replicas: dict[str, list[Replica]] = {}
        for service in SERVICES:
            port = free_port_on(hosts)
            self.replicas[service] = [
                Replica(service, i, host, port, free_port_on([host]))
                for i, host in enumerate(hosts)
            ]
        if self.resolver == "auto":
            self.resolver = "dns" if dns.available() else "static"
        self.dns: dns.Dnsmasq | None = None
        if self.resolver == "dns":
            self.dns = dns.Dnsmasq(
                self.run_dir / "logs" / "dnsmasq.log",
                {dns_name(s): [r.host for r in rs] for s, rs in self.replicas.items()},
            )

    # --- addressing ----------------------------------------------------------------------------

    def target(self, service: str) -> str:
        replicas = self.replicas[service]
        if self.dns is not None:
            return f"dns://127.0.0.1:{self.dns.port}/{dns_name(service)}:{replicas[0].port}"
        return "ipv4:" + ",".join(r.address for r in replicas)

    def all_replicas(self) -> list[Replica]:
        return [r for service in SERVICES for r in self.replicas[service]]

    def replica(self, name: str) -> Replica:
        return next(r for r in self.all_replicas() if r.name == name)

    def replica_env(self, replica: Replica) -> dict[str, str]:
        return self.stack.service_env(
            replica.service,
            {
                "RECSERVE_HOST": replica.host,
                "RECSERVE_GRPC_PORT": str(replica.port),
                "RECSERVE_METRICS_PORT": str(replica.metrics_port),
                "RECSERVE_EMBEDDING_STORE_ADDR": self.target("embedding_store"),
                "RECSERVE_CANDIDATES_ADDR": self.target("candidates"),
                "RECSERVE_RANKING_ADDR": self.target("ranking"),
                **self.env,
            },
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, version: str | None = None, timeout_s: float = 90.0) -> None:
        try:
            if self.dns is not None:
                self.dns.start()
            self.stack.start_redis()
            self.stack.publish(version)
            for replica in self.all_replicas():
                self.start_replica(replica)
            for replica in self.all_replicas():
                self.wait_ready(replica, timeout_s)
        except BaseException:
            self.down()
            raise

    def start_replica(self, replica: Replica) -> int:
        return self.stack._spawn(
            replica.name,
            [self.stack.python, "-m", f"recserve.{replica.service}"],
            self.replica_env(replica),
        )

    def wait_ready(self, replica: Replica, timeout_s: float = 90.0) -> None:
        wait_serving(replica.address, timeout_s)

    def pid(self, name: str) -> int | None:
        return self.stack.pid(name)

    def alive(self, name: str) -> bool:
        """The process runs (a zombie, exited but not yet reaped, does not)."""
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def stop_replica(
        self, replica: Replica, sig: int = signal.SIGTERM, timeout_s: float = 30.0
    ) -> None:
        """Signals the replica and waits until it has exited (SIGKILL after timeout_s)."""
        self.stack.stop_process(replica.name, sig, timeout_s)

    def restart_replica(self, replica: Replica, timeout_s: float = 90.0) -> float:
        """Starts a stopped replica; returns seconds until it reported SERVING."""
        started = time.monotonic()
        self.start_replica(replica)
        self.wait_ready(replica, timeout_s)
        return time.monotonic() - started

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.admin_redis_url, socket_timeout=5)

    def down(self) -> None:
        # All at once, so the shutdown delays and drains overlap; Redis and dnsmasq last.
        for replica in self.all_replicas():
            pid = self.pid(replica.name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for replica in reversed(self.all_replicas()):
            self.stack.stop_process(replica.name, signal.SIGTERM, 15)
        self.stack.stop_process("redis")
        if self.dns is not None:
            self.dns.stop()

    # --- observation ---------------------------------------------------------------------------

    def metrics(self, replica: Replica, timeout_s: float = 2.0) -> dict[str, float]:
        """Samples of the replica's /metrics as {'name{label="v",...}': value}."""
        url = f"http://{replica.host}:{replica.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            text = reply.read().decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    def rpcs_served(self, replica: Replica) -> float:
        """Application RPCs this replica has answered (health checks excluded)."""
        try:
            samples = self.metrics(replica)
        except OSError:
            return 0.0
        return sum(v for k, v in samples.items() if k.startswith("recserve_rpc_total{"))

    def rss_bytes(self, name: str) -> int:
        """Resident set size of the process; 0 if it is not running."""
        pid = self.pid(name)
        if pid is None:
            return 0
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def log_text(self, name: str) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def signal_pid(pid: int, sig: int) -> None:
    os.kill(pid, sig)
