"""Cluster operations behind `recserve cluster`, written against the kubernetes client APIs.

Objects are found by the chart's labels (``app.kubernetes.io/name=recserve``,
``app.kubernetes.io/instance=<release>``, ``app.kubernetes.io/component=<name>``), so the
code does not depend on how the chart composes object names.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from recserve.v1 import model_info_pb2
from recserve.v1.model_info_pb2_grpc import ModelInfoServiceStub

DESIRED_VERSION_ANNOTATION = "recserve.io/desired-model-version"
ROLLOUT_JOB_ANNOTATION = "recserve.io/last-rollout-job"
VERSION_LABEL = "recserve.io/model-version"
SERVICE_LABEL = "recserve.io/service"
COMPONENT_LABEL = "app.kubernetes.io/component"
TRAINER_COMPONENT = "trainer"
PUBLISH_CONTAINER = "publish"
DEFAULT_GRPC_PORT = 50051
MODEL_INFO_TIMEOUT_S = 5.0

# Opens a byte stream to a pod's port: (namespace, pod, port) -> a connected socket.
Dial = Callable[[str, str, int], socket.socket]


class RolloutError(RuntimeError):
    """A rollout could not be started or did not complete."""


@dataclass
class ClusterApis:
    """The kubernetes API groups used here (one ApiClient underneath)."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    batch: client.BatchV1Api
    autoscaling: client.AutoscalingV2Api
    # How pods' gRPC ports are reached; None: the API server's port-forward.
    dial: Dial | None = None

    @classmethod
    def from_api_client(cls, api_client: client.ApiClient) -> ClusterApis:
        return cls(
            core=client.CoreV1Api(api_client),
            apps=client.AppsV1Api(api_client),
            batch=client.BatchV1Api(api_client),
            autoscaling=client.AutoscalingV2Api(api_client),
        )

    @property
    def api_client(self) -> client.ApiClient:
        return self.core.api_client

    def dial_pod(self, namespace: str, pod: str, port: int) -> socket.socket:
        if self.dial is not None:
            return self.dial(namespace, pod, port)
        # pods/portforward (create): the kubelet connects to the port inside the pod's network
        # namespace, so neither NetworkPolicies nor the Service are in the way.
        forward = portforward(
            self.core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
        )
        sock: socket.socket = forward.socket(port)
        return sock


def release_selector(release: str, component: str | None = None) -> str:
    sel = f"app.kubernetes.io/name=recserve,app.kubernetes.io/instance={release}"
    return f"{sel},{COMPONENT_LABEL}={component}" if component else sel


# ---------------------------------------------------------------------------- status


@dataclass
class MetricTarget:
    """One HPA metric: what it measures, its target and the current value (strings as the
    API reports them, e.g. "15" / "12500m" / "75%")."""

    name: str
    target: str
    current: str | None


@dataclass
class PodStatus:
    name: str
    service: str
    phase: str
    ready: bool
    node: str | None
    # From the pod's GetModelInfo: the version it answers with, and all it has loaded.
    active_version: str | None = None
    model_versions: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ServiceStatus:
    name: str
    deployment: str
    desired: int
    ready: int
    updated: int
    hpa_min: int | None = None
    hpa_max: int | None = None
    hpa_current: int | None = None
    hpa_desired: int | None = None
    metrics: list[MetricTarget] = field(default_factory=list)
    pods: list[PodStatus] = field(default_factory=list)


@dataclass
class ReleaseStatus:
    namespace: str
    release: str
    desired_version: str | None
    services: list[ServiceStatus]

    def versions(self) -> set[str]:
        """The active versions of the pods."""
        return {p.active_version for s in self.services for p in s.pods if p.active_version}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _metric_target(spec: Any) -> tuple[str, str]:
    """(name, target) of one autoscaling/v2 MetricSpec."""
    if spec.type == "Resource":
        t = spec.resource.target
        name = spec.resource.name
    elif spec.type == "Pods":
        t = spec.pods.target
        name = spec.pods.metric.name
    elif spec.type == "Object":
        t = spec.object.target
        name = spec.object.metric.name
    elif spec.type == "External":
        t = spec.external.target
        name = spec.external.metric.name
    else:
        return spec.type, "?"
    if t.average_utilization is not None:
        return name, f"{t.average_utilization}%"
    return name, str(t.average_value if t.average_value is not None else t.value)


def _metric_current(status: Any) -> tuple[str, str]:
    if status.type == "Resource":
        c = status.resource.current
        name = status.resource.name
    elif status.type == "Pods":
        c = status.pods.current
        name = status.pods.metric.name
    elif status.type == "Object":
        c = status.object.current
        name = status.object.metric.name
    elif status.type == "External":
        c = status.external.current
        name = status.external.metric.name
    else:
        return status.type, "?"
    if c.average_utilization is not None:
        return name, f"{c.average_utilization}%"
    return name, str(c.average_value if c.average_value is not None else c.value)


def _pod_ready(pod: Any) -> bool:
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == "Ready":
            return cond.status == "True"
    return False


@dataclass
class Forward:
    """A local address whose connections reach a pod's port; `failures` holds why opening the
    stream to the pod failed, per connection that could not be forwarded."""

    address: str
    failures: list[Exception] = field(default_factory=list)


@contextlib.contextmanager
def forwarded(apis: ClusterApis, namespace: str, pod: str, port: int) -> Iterator[Forward]:
    """Forwards connections to 127.0.0.1:<ephemeral> to `pod`:`port` through `apis.dial_pod`,
    one stream per connection, as `kubectl port-forward` does: gRPC needs a TCP address, the
    port-forward gives a socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    forward = Forward(f"127.0.0.1:{listener.getsockname()[1]}")

    def accept() -> None:
        while True:
            try:
                local, _ = listener.accept()
            except OSError:  # the listener was closed
                return
            threading.Thread(
                target=_splice_to_pod,
                args=(apis, namespace, pod, port, local, forward.failures),
                daemon=True,
            ).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield forward
    finally:
        listener.close()


def _splice_to_pod(
    apis: ClusterApis,
    namespace: str,
    pod: str,
    port: int,
    local: socket.socket,
    failures: list[Exception],
) -> None:
    """Copies bytes both ways between `local` and a new stream to the pod until one side ends."""
    with local:
        try:
            remote = apis.dial_pod(namespace, pod, port)
        except Exception as e:  # the client sees the connection close: UNAVAILABLE
            failures.append(e)
            return
        with remote, selectors.DefaultSelector() as selector:
            selector.register(local, selectors.EVENT_READ, remote)
            selector.register(remote, selectors.EVENT_READ, local)
            while True:
                for key, _ in selector.select():
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        key.data.sendall(data)
                    except OSError:
                        return


def pod_model_info(
    apis: ClusterApis, namespace: str, pod: str, grpc_port: int = DEFAULT_GRPC_PORT
) -> model_info_pb2.GetModelInfoResponse:
    """GetModelInfo of one pod, over a port-forward to its gRPC port (plaintext: servers with
    RECSERVE_TLS_* set are not supported here). Raises the port-forward's error when the pod
    could not be reached, grpc.RpcError when it did not answer."""
    with forwarded(apis, namespace, pod, grpc_port) as forward:
        with grpc.insecure_channel(forward.address) as channel:
            stub = ModelInfoServiceStub(channel)
            try:
                response: model_info_pb2.GetModelInfoResponse = stub.GetModelInfo(
                    model_info_pb2.GetModelInfoRequest(), timeout=MODEL_INFO_TIMEOUT_S
                )
            except grpc.RpcError:
                if forward.failures:
                    raise forward.failures[-1] from None
                raise
        return response


def release_status(
    apis: ClusterApis,
    namespace: str,
    release: str,
    *,
    grpc_port: int = DEFAULT_GRPC_PORT,
    read_model_info: bool = True,
) -> ReleaseStatus:
    """Replicas and HPA per service; per running serving pod, its GetModelInfo (an error per
    pod that cannot be asked, the rest is still reported)."""
    selector = release_selector(release)
    # Any: the client's models type every field Optional; the API server fills these.
    deployments: list[Any] = apis.apps.list_namespaced_deployment(
        namespace, label_selector=selector
    ).items
    hpas: list[Any] = apis.autoscaling.list_namespaced_horizontal_pod_autoscaler(
        namespace, label_selector=selector
    ).items
    pods: list[Any] = apis.core.list_namespaced_pod(namespace, label_selector=selector).items
    hpa_by_target = {h.spec.scale_target_ref.name: h for h in hpas}

    services: list[ServiceStatus] = []
    for dep in sorted(deployments, key=lambda d: d.metadata.name):
        labels = dep.spec.template.metadata.labels or {}
        svc_name = labels.get(SERVICE_LABEL) or labels.get(COMPONENT_LABEL) or dep.metadata.name
        st = dep.status
        svc = ServiceStatus(
            name=svc_name,
            deployment=dep.metadata.name,
            desired=dep.spec.replicas if dep.spec.replicas is not None else 0,
            ready=(st.ready_replicas or 0) if st else 0,
            updated=(st.updated_replicas or 0) if st else 0,
        )
        hpa = hpa_by_target.get(dep.metadata.name)
        if hpa is not None:
            svc.hpa_min = hpa.spec.min_replicas
            svc.hpa_max = hpa.spec.max_replicas
            svc.hpa_current = hpa.status.current_replicas if hpa.status else None
            svc.hpa_desired = hpa.status.desired_replicas if hpa.status else None
            current = dict(
                _metric_current(m)
                for m in ((hpa.status.current_metrics or []) if hpa.status else [])
            )
            for spec in hpa.spec.metrics or []:
                name, target = _metric_target(spec)
                svc.metrics.append(MetricTarget(name, target, current.get(name)))
        services.append(svc)

    by_service = {s.name: s for s in services}
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        labels = pod.metadata.labels or {}
        svc_name = labels.get(SERVICE_LABEL)
        if svc_name is None or svc_name not in by_service:
            continue  # redis, trainer and test pods are not serving pods
        ps = PodStatus(
            name=pod.metadata.name,
            service=svc_name,
            phase=pod.status.phase if pod.status else "Unknown",
            ready=_pod_ready(pod),
            node=pod.spec.node_name if pod.spec else None,
        )
        if read_model_info and ps.phase == "Running":
            try:
                info = pod_model_info(apis, namespace, ps.name, grpc_port)
            except ApiException as e:
                ps.error = f"model info: HTTP {e.status} {e.reason}"
            except grpc.RpcError as e:
                ps.error = f"model info: {e.code().name} {e.details()}"
            except Exception as e:  # a port-forward that failed otherwise: report, keep going
                ps.error = f"model info: {e}"
            else:
                ps.active_version = info.active_version or None
                ps.model_versions = list(info.loaded_versions)
        by_service[svc_name].pods.append(ps)

    desired = None
    cron = find_trainer_cronjob(apis, namespace, release, required=False)
    if cron is not None:
        desired = (cron.metadata.annotations or {}).get(DESIRED_VERSION_ANNOTATION)
    return ReleaseStatus(namespace, release, desired, services)


def format_status(status: ReleaseStatus) -> str:
    lines = [
        f"release {status.release} in {status.namespace}; "
        f"desired model version: {status.desired_version or '-'}",
        "",
    ]
    rows: list[tuple[str, ...]] = [
        ("SERVICE", "READY", "HPA (min/cur/desired/max)", "METRIC: CURRENT / TARGET")
    ]
    for s in status.services:
        hpa = (
            f"{s.hpa_min}/{s.hpa_current}/{s.hpa_desired}/{s.hpa_max}"
            if s.hpa_max is not None
            else "off"
        )
        metrics = "; ".join(f"{m.name}: {m.current or '?'} / {m.target}" for m in s.metrics)
        rows.append((s.name, f"{s.ready}/{s.desired}", hpa, metrics or "-"))
    lines += _table(rows)
    lines.append("")
    rows = [("POD", "SERVICE", "PHASE", "READY", "MODEL VERSION", "LOADED")]
    for s in status.services:
        for p in s.pods:
            version = p.active_version or p.error or "-"
            loaded = ",".join(p.model_versions) or "-"
            rows.append((p.name, p.service, p.phase, "yes" if p.ready else "no", version, loaded))
    lines += _table(rows)
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


# --------------------------------------------------------------------------- rollout


def find_trainer_cronjob(
    apis: ClusterApis, namespace: str, release: str, *, required: bool = True
) -> Any:
    items = apis.batch.list_namespaced_cron_job(
        namespace, label_selector=release_selector(release, TRAINER_COMPONENT)
    ).items
    if len(items) == 1:
        return items[0]
    if not required and not items:
        return None
    raise RolloutError(
        f"expected one trainer CronJob for release {release!r} in {namespace!r}, found "
        f"{len(items)} (is trainer.enabled set in the chart values?)"
    )


_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars, alphanumeric at both ends)."""
    v = _LABEL_VALUE.sub("-", text)[:63]
    return v.strip("-_.")


def create_job_from_cronjob(
    apis: ClusterApis,
    cron: Any,
    *,
    name_prefix: str,
    publish_only_version: str | None = None,
    extra_labels: dict[str, str] | None = None,
    extra_annotations: dict[str, str] | None = None,
) -> Any:
    """Create a Job from the CronJob's jobTemplate, like ``kubectl create job --from``.

    With ``publish_only_version`` the train init container is dropped and the publish
    container gets ``--version <v>``.
    """
    api = apis.api_client
    tmpl: dict[str, Any] = api.sanitize_for_serialization(cron.spec.job_template)
    spec = tmpl["spec"]
    pod_spec = spec["template"]["spec"]
    if publish_only_version is not None:
        pod_spec.pop("initContainers", None)
        publish = [c for c in pod_spec["containers"] if c["name"] == PUBLISH_CONTAINER]
        if not publish:
            raise RolloutError(f"CronJob has no {PUBLISH_CONTAINER!r} container")
        publish[0]["args"] = [*publish[0].get("args", []), "--version", publish_only_version]
    meta = tmpl.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), **(extra_labels or {})}
    spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(extra_labels or {})
    body: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": name_prefix,
            "namespace": cron.metadata.namespace,
            "labels": labels,
            "annotations": {**(meta.get("annotations") or {}), **(extra_annotations or {})},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cron.metadata.name,
                    "uid": cron.metadata.uid,
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": spec,
    }
    job: Any = client.V1Job.from_dict(body) if hasattr(client.V1Job, "from_dict") else body
    return apis.batch.create_namespaced_job(cron.metadata.namespace, job)


def rollout(
    apis: ClusterApis, namespace: str, release: str, version: str, *, now: datetime | None = None
) -> Any:
    """Start publishing ``version``; returns the created Job."""
    if not version or "/" in version or version in {".", ".."}:
        raise RolloutError(f"invalid model version {version!r}")
    cron = find_trainer_cronjob(apis, namespace, release)
    job = create_job_from_cronjob(
        apis,
        cron,
        name_prefix=f"{cron.metadata.name}-rollout-",
        publish_only_version=version,
        extra_labels={VERSION_LABEL: label_value(version)},
        extra_annotations={DESIRED_VERSION_ANNOTATION: version},
    )
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    apis.batch.patch_namespaced_cron_job(
        cron.metadata.name,
        namespace,
        {
            "metadata": {
                "annotations": {
                    DESIRED_VERSION_ANNOTATION: version,
                    ROLLOUT_JOB_ANNOTATION: f"{job.metadata.name} {stamp}",
                }
            }
        },
    )
    return job


def train(apis: ClusterApis, namespace: str, release: str) -> Any:
    """Run the CronJob's train + publish now."""
    cron = find_trainer_cronjob(apis, namespace, release)
    return create_job_from_cronjob(apis, cron, name_prefix=f"{cron.metadata.name}-manual-")


def wait_for_job(
    apis: ClusterApis,
    namespace: str,
    name: str,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    deadline = clock() + timeout_s
    while True:
        job = apis.batch.read_namespaced_job_status(name, namespace)
        st = job.status
        for cond in (st.conditions or []) if st else []:
            if cond.status != "True":
                continue
            if cond.type == "Complete":
                return
            if cond.type == "Failed":
                raise RolloutError(f"job {name} failed: {cond.reason}: {cond.message}")
        if clock() >= deadline:
            raise RolloutError(f"job {name} did not finish within {timeout_s:.0f} s")
        sleep(poll_s)


def wait_for_version(
    apis: ClusterApis,
    namespace: str,
    release: str,
    version: str,
    *,
    timeout_s: float,
    services: Iterable[str] | None = None,
    poll_s: float = 2.0,
    grpc_port: int = DEFAULT_GRPC_PORT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ReleaseStatus:
    """Wait until every running pod of ``services`` (default: all) answers with ``version``."""
    wanted = set(services) if services is not None else None
    deadline = clock() + timeout_s
    while True:
        status = release_status(apis, namespace, release, grpc_port=grpc_port)
        pods = [
            p
            for s in status.services
            if wanted is None or s.name in wanted
            for p in s.pods
            if p.phase == "Running"
        ]
        lagging = [p.name for p in pods if p.active_version != version]
        if pods and not lagging:
            return status
        if clock() >= deadline:
            raise RolloutError(
                f"pods not on {version} after {timeout_s:.0f} s: {', '.join(lagging) or 'none running'}"
            )
        sleep(poll_s)
