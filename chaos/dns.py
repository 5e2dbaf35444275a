"""A dnsmasq on loopback that resolves each service name to all of its replicas.

gRPC's c-ares resolver accepts a DNS server in the target's authority:
``dns://127.0.0.1:<port>/<name>:<grpc port>``; with ``round_robin`` the client then keeps one
connection per address and spreads calls over them, as with a Kubernetes headless Service.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

DNSMASQ = "dnsmasq"


def available() -> bool:
    return shutil.which(DNSMASQ) is not None


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (dnsmasq listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for dnsmasq")


def dnsmasq_argv(port: int, records: Mapping[str, Sequence[str]]) -> list[str]:
    """Loopback only, no upstream servers, no /etc/hosts, no config file, no pid file; TTL 0
    so a re-resolution sees a change at once."""
    argv = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file",
        "--log-facility=-",
        "--local-ttl=0",
    ]
    for name, addresses in sorted(records.items()):
        argv += [f"--host-record={name},{address}" for address in addresses]
    return argv


def query_a(name: str, port: int, server: str = "127.0.0.1", timeout_s: float = 1.0) -> list[str]:
    """A records for `name` from the server (a minimal DNS client, for readiness and tests)."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    packet = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(packet, (server, port))
        reply = sock.recv(4096)
    answers = int.from_bytes(reply[6:8], "big")
    offset = 12 + len(question) + 4
    found: list[str] = []
    for _ in range(answers):
        # Name: a compression pointer (2 bytes) or labels.
        if reply[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        rtype = int.from_bytes(reply[offset : offset + 2], "big")
        length = int.from_bytes(reply[offset + 8 : offset + 10], "big")
        data = reply[offset + 10 : offset + 10 + length]
        if rtype == 1 and length == 4:
            found.append(".".join(str(b) for b in data))
        offset += 10 + length
    return found


class Dnsmasq:
    def __init__(self, log_path: Path, records: Mapping[str, Sequence[str]]):
        self.log_path = log_path
        self.records = {name: list(addresses) for name, addresses in records.items()}
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self.port = free_udp_tcp_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                dnsmasq_argv(self.port, self.records),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        name, addresses = next(iter(self.records.items()))
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"dnsmasq exited with {self._process.returncode}; see {self.log_path}"
                )
            try:
                if sorted(query_a(name, self.port, timeout_s=0.2)) == sorted(addresses):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dnsmasq on port {self.port} does not answer for {name}")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process = None
