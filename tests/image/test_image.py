"""The built image, run the way the chart runs it (`make image-test` builds it and runs these).

Every container command the chart renders that uses the recserve image (trainer train and
publish, the four services, the `helm test` client) runs from the image's root filesystem
mounted read-only, as the user and group of the chart's securityContext, with a tmpfs /tmp and
a bundles directory at the chart's mount path, against a redis-server on loopback; the
services must report `liveness` and `readiness` SERVING over gRPC.

scripts/image-test.sh passes the mounted image (RECSERVE_IMAGE_ROOTFS), `buildah inspect` of
it (RECSERVE_IMAGE_INSPECT) and runs pytest in a private mount namespace (RECSERVE_HOST_MOUNT_NS
names the one it left); without them every test here is skipped.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from recserve.devstack.stack import free_port, wait_for_redis, wait_serving
from tools import REPO_ROOT, chart

ROOTFS = os.environ.get("RECSERVE_IMAGE_ROOTFS")
INSPECT = os.environ.get("RECSERVE_IMAGE_INSPECT")
pytestmark = pytest.mark.skipif(
    not (ROOTFS and INSPECT), reason="`make image-test` builds the image and runs these"
)

SERVICES = ("embedding_store", "candidates", "ranking", "gateway")
# The chart's trainer.trainArgs knob: a small synthetic data set keeps the run short.
TRAIN_ARGS = ["--format", "synthetic", "--synthetic-items", "300", "--synthetic-users", "200",
              "--synthetic-events", "10000", "--seed", "3"]  # fmt: skip
KUBELET_VAR = re.compile(r"\$\((\w+)\)")


@dataclass(frozen=True)
class Container:
    """One container of the rendered chart: what the kubelet would run, and as whom."""

    argv: list[str]
    env: dict[str, str]  # the entries with a literal value
    user: str  # "uid:gid"
    read_only_root: bool


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return (spec.get("template") or {}).get("spec") or {}


def chart_containers() -> dict[str, Container]:
    """Container name -> its command, for every container that runs `python -m recserve.*`."""
    rendered = chart.render({"trainer": {"trainArgs": TRAIN_ARGS}})
    out: dict[str, Container] = {}
    for obj in chart.objects(rendered):
        spec = pod_spec(obj)
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            argv = [*(c.get("command") or []), *(c.get("args") or [])]
            if argv[:2] != ["python", "-m"] or not argv[2].startswith("recserve."):
                continue
            sc = {**(spec.get("securityContext") or {}), **(c.get("securityContext") or {})}
            out[c["name"].replace("-", "_")] = Container(
                argv=argv,
                env={e["name"]: e["value"] for e in c.get("env") or [] if "value" in e},
                user=f"{sc['runAsUser']}:{sc['runAsGroup']}",
                read_only_root=bool(sc.get("readOnlyRootFilesystem")),
            )
    return out


def mount(*args: str | Path) -> None:
    subprocess.run(["mount", *map(str, args)], check=True)


@dataclass
class Image:
    """The image's root filesystem mounted read-only at `root`, and its OCI config."""

    root: Path
    config: dict[str, Any]
    bundles: Path  # the host directory mounted at the chart's bundle path

    def argv(self, user: str, env: Mapping[str, str], argv: list[str]) -> list[str]:
        """The host command line that runs `argv` in the image as the kubelet would: the
        image's Env and WorkingDir, then the container's env, as `user` with no extra groups."""
        return [
            "chroot", f"--userspec={user}", "--groups=", str(self.root),
            "/usr/bin/env", "-i", f"--chdir={self.config['WorkingDir']}",
            *self.config["Env"], *(f"{k}={v}" for k, v in env.items()),
            *argv,
        ]  # fmt: skip

    def run(
        self, user: str, env: Mapping[str, str], argv: list[str], timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(user, env, argv), check=False, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def containers() -> dict[str, Container]:
    return chart_containers()


@pytest.fixture(scope="module")
def image(
    tmp_path_factory: pytest.TempPathFactory, containers: dict[str, Container]
) -> Iterator[Image]:
    assert ROOTFS and INSPECT
    if os.readlink("/proc/self/ns/mnt") == os.environ.get("RECSERVE_HOST_MOUNT_NS"):
        pytest.fail("run under `unshare --mount` (scripts/image-test.sh): these tests mount")
    uid, gid = map(int, containers["gateway"].user.split(":"))
    bundle_dir = containers["train"].env["RECSERVE_BUNDLE_DIR"]
    tmp = tmp_path_factory.mktemp("image")
    root, bundles = tmp / "root", tmp / "bundles"
    root.mkdir()
    bundles.mkdir()
    os.chown(bundles, uid, gid)
    # Volume mount points are made by the kubelet, in the container's own layer.
    Path(ROOTFS, bundle_dir.lstrip("/")).mkdir(exist_ok=True)
    mount("--bind", ROOTFS, root)
    mount("-o", "remount,bind,ro", root)
    mount("-t", "tmpfs", "-o", "mode=1777,size=1g", "tmpfs", root / "tmp")
    mount("--bind", bundles, root / bundle_dir.lstrip("/"))
    mount("-t", "proc", "proc", root / "proc")
    mount("--rbind", "/dev", root / "dev")
    try:
        yield Image(root, json.loads(Path(INSPECT).read_text())["OCIv1"]["config"], bundles)
    finally:
        subprocess.run(["umount", "-R", "-l", str(root)], check=False)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(redis.Redis.from_url(url, socket_connect_timeout=0.2))
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def local_env(container: Container, redis_url: str, ports: Mapping[str, int]) -> dict[str, str]:
    """The container's env with the cluster's addresses replaced by loopback ones."""
    env = {**container.env, "RECSERVE_REDIS_URL": redis_url, "RECSERVE_HOST": "127.0.0.1"}
    for name in env:
        if name.startswith("RECSERVE_") and name.endswith("_ADDR"):
            env[name] = (
                f"127.0.0.1:{ports[name.removeprefix('RECSERVE_').removesuffix('_ADDR').lower()]}"
            )
    return env


def expand(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The kubelet's $(VAR) expansion in command and args."""
    return [KUBELET_VAR.sub(lambda m: env.get(m[1], m[0]), a) for a in argv]


@pytest.fixture(scope="module")
def published(image: Image, containers: dict[str, Container], redis_url: str) -> str:
    """The trainer Job: train (init container), then publish; returns the bundle version."""
    for name in ("train", "publish"):
        c = containers[name]
        env = local_env(c, redis_url, {})
        out = image.run(c.user, env, expand(c.argv, env), timeout=600)
        assert out.returncode == 0, f"{name}: {out.stdout[-2000:]}{out.stderr[-3000:]}"
    versions = [p.name for p in image.bundles.iterdir() if (p / "manifest.json").exists()]
    assert len(versions) == 1, versions
    return versions[0]


@dataclass
class Running:
    addresses: dict[str, str]
    pids: dict[str, int]


@pytest.fixture(scope="module")
def services(
    image: Image, containers: dict[str, Container], redis_url: str, published: str
) -> Iterator[Running]:
    ports = {s: free_port() for s in SERVICES}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for s in SERVICES:
            c = containers[s]
            env = {
                **local_env(c, redis_url, ports),
                "RECSERVE_GRPC_PORT": str(ports[s]),
                "RECSERVE_METRICS_PORT": str(free_port()),
            }
            procs[s] = subprocess.Popen(image.argv(c.user, env, expand(c.argv, env)))
        yield Running(
            {s: f"127.0.0.1:{p}" for s, p in ports.items()}, {s: p.pid for s, p in procs.items()}
        )
        for s, p in procs.items():
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=60) == 0, f"{s} exited {p.returncode} on SIGTERM"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_chart_runs_every_role_as_the_image_user_on_a_read_only_root(
    image: Image, containers: dict[str, Container]
) -> None:
    assert {*SERVICES, "train", "publish", "recommend"} <= set(containers)
    for name, c in containers.items():
        assert c.user == image.config["User"], name
        assert c.read_only_root, name
    assert image.config["Cmd"] == containers["gateway"].argv


@pytest.mark.parametrize("service", SERVICES)
def test_service_serves_health_from_the_image(
    service: str, services: Running, containers: dict[str, Container]
) -> None:
    for health in ("liveness", "readiness"):
        wait_serving(services.addresses[service], timeout_s=120, service=health)
    status = Path(f"/proc/{services.pids[service]}/status").read_text()
    # chroot execs env, which execs python: the pid is the service's own process.
    uid, gid = containers[service].user.split(":")
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s", status, re.M), status
    assert re.search(rf"^Gid:\s+{gid}\s+{gid}\s", status, re.M), status
    assert re.search(r"^Groups:\s*$", status, re.M), status


def test_helm_test_client_recommends(
    image: Image, containers: dict[str, Container], services: Running
) -> None:
    c = containers["recommend"]
    argv = list(c.argv)
    argv[argv.index("--target") + 1] = services.addresses["gateway"]
    out = image.run(c.user, c.env, argv, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert json.loads(out.stdout)["items"], out.stdout


def test_root_filesystem_is_read_only_and_tmp_writable(
    image: Image, containers: dict[str, Container]
) -> None:
    probe = (
        "import errno, pathlib\n"
        "pathlib.Path('/tmp/probe').write_text('ok')\n"
        "try:\n"
        "    pathlib.Path('/opt/recserve/probe').write_text('no')\n"
        "except OSError as e:\n"
        "    raise SystemExit(e.errno)\n"
    )
    out = image.run(containers["gateway"].user, {}, ["python", "-c", probe], timeout=60)
    assert out.returncode == errno.EROFS, out.stderr


def test_cluster_command_names_its_extra(image: Image, containers: dict[str, Container]) -> None:
    """kubernetes is the `cluster` extra, not in the service image."""
    out = image.run(containers["gateway"].user, {}, ["recserve", "cluster", "status"], timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pip install 'recserve[cluster]'" in out.stderr, out.stderr


def test_version_is_the_project_version(image: Image, containers: dict[str, Container]) -> None:
    import tomllib

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = image.run(containers["gateway"].user, {}, ["recserve", "--version"], timeout=60)
    assert out.stdout.strip() == f"recserve {version}", out.stdout + out.stderr
