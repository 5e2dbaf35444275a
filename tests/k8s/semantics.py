"""Semantic checks on rendered manifests that no schema catches.

Each check returns a list of problems (empty = fine), so a test can report all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity

from .netpol import selector_matches

Obj = Mapping[str, Any]

# m5.xlarge: 4 vCPU / 16 GiB; allocatable ~3.92 CPU / ~14.5 GiB (docs: shared/GUIDE.md).
NODE_ALLOCATABLE_CPU = 3.92
NODE_ALLOCATABLE_MEM = 14.5 * 2**30
# apiserver limits for HPA behavior
MAX_STABILIZATION_S = 3600
MAX_POLICY_PERIOD_S = 1800


@dataclass
class Workload:
    kind: str
    name: str
    namespace: str
    replicas: int | None
    pod: Obj  # pod template: {metadata, spec}
    obj: Obj

    @property
    def labels(self) -> Mapping[str, str]:
        return self.pod.get("metadata", {}).get("labels") or {}

    @property
    def spec(self) -> Obj:
        return self.pod["spec"]

    def containers(self, init: bool = True) -> list[Obj]:
        return list(self.spec.get("containers") or []) + (
            list(self.spec.get("initContainers") or []) if init else []
        )


def workloads(objs: Sequence[Obj]) -> list[Workload]:
    out = []
    for o in objs:
        k, m = o["kind"], o["metadata"]
        ns = m.get("namespace", "")
        if k in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
            out.append(
                Workload(k, m["name"], ns, o["spec"].get("replicas"), o["spec"]["template"], o)
            )
        elif k == "Job":
            out.append(Workload(k, m["name"], ns, None, o["spec"]["template"], o))
        elif k == "CronJob":
            out.append(
                Workload(k, m["name"], ns, None, o["spec"]["jobTemplate"]["spec"]["template"], o)
            )
        elif k == "Pod":
            out.append(Workload(k, m["name"], ns, None, {"metadata": m, "spec": o["spec"]}, o))
    return out


def by_kind(objs: Sequence[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def container_ports(container: Obj) -> dict[str | None, int]:
    return {p.get("name"): p["containerPort"] for p in container.get("ports") or []}


# ------------------------------------------------------------------------------ checks


def check_hpas(objs: Sequence[Obj], adapter_metrics: set[str]) -> list[str]:
    problems = []
    deployments = {d["metadata"]["name"]: d for d in by_kind(objs, "Deployment")}
    for h in by_kind(objs, "HorizontalPodAutoscaler"):
        n, s = h["metadata"]["name"], h["spec"]
        if not 1 <= s["minReplicas"] <= s["maxReplicas"]:
            problems.append(
                f"HPA {n}: need 1 <= minReplicas <= maxReplicas, got {s['minReplicas']}..{s['maxReplicas']}"
            )
        ref = s["scaleTargetRef"]
        dep = deployments.get(ref["name"])
        if ref["kind"] != "Deployment" or dep is None:
            problems.append(f"HPA {n}: scaleTargetRef {ref} is not a rendered Deployment")
        elif "replicas" in dep["spec"]:
            problems.append(
                f"HPA {n}: Deployment sets spec.replicas; every helm upgrade would reset the HPA"
            )
        kinds = set()
        for m in s.get("metrics") or []:
            kinds.add(m["type"])
            body = m[m["type"][0].lower() + m["type"][1:]]
            t = body["target"]
            value = t.get("averageUtilization", t.get("averageValue", t.get("value")))
            if value is None or parse_quantity(value) <= 0:
                problems.append(f"HPA {n}: non-positive target {t}")
            if m["type"] == "Pods" and body["metric"]["name"] not in adapter_metrics:
                problems.append(
                    f"HPA {n}: metric {body['metric']['name']} is not exposed by prometheus-adapter rules"
                )
            if m["type"] == "Resource" and "resources" not in _requests_of(dep, body["name"]):
                problems.append(
                    f"HPA {n}: {body['name']} utilization target but containers have no {body['name']} request"
                )
        if kinds != {"Pods", "Resource"}:
            problems.append(
                f"HPA {n}: expected a per-pod custom metric and CPU, got {sorted(kinds)}"
            )
        beh = s.get("behavior")
        if not beh or not {"scaleUp", "scaleDown"} <= set(beh):
            problems.append(f"HPA {n}: explicit scaleUp and scaleDown behavior required")
            continue
        for direction, rules in beh.items():
            w = rules.get("stabilizationWindowSeconds", 0)
            if not 0 <= w <= MAX_STABILIZATION_S:
                problems.append(
                    f"HPA {n}: {direction} stabilizationWindowSeconds {w} outside 0..3600"
                )
            for p in rules.get("policies") or []:
                if p["value"] <= 0 or not 0 < p["periodSeconds"] <= MAX_POLICY_PERIOD_S:
                    problems.append(f"HPA {n}: {direction} policy {p} out of range")
        if beh["scaleUp"].get("stabilizationWindowSeconds", 0) > beh["scaleDown"].get(
            "stabilizationWindowSeconds", 300
        ):
            problems.append(f"HPA {n}: scales down faster than it scales up")
    return problems


def _requests_of(dep: Obj | None, resource: str) -> dict[str, str]:
    if dep is None:
        return {}
    containers = dep["spec"]["template"]["spec"]["containers"]
    ok = all(resource in (c.get("resources", {}).get("requests") or {}) for c in containers)
    return {"resources": "yes"} if ok else {}


def min_replicas(objs: Sequence[Obj], w: Workload) -> int:
    for h in by_kind(objs, "HorizontalPodAutoscaler"):
        if h["spec"]["scaleTargetRef"]["name"] == w.name:
            return int(h["spec"]["minReplicas"])
    return 1 if w.replicas is None else int(w.replicas)


def check_pdbs(objs: Sequence[Obj]) -> list[str]:
    problems = []
    wls = [w for w in workloads(objs) if w.kind in ("Deployment", "StatefulSet")]
    for pdb in by_kind(objs, "PodDisruptionBudget"):
        n, s = pdb["metadata"]["name"], pdb["spec"]
        matched = [w for w in wls if selector_matches(s["selector"], w.labels)]
        if len(matched) != 1:
            problems.append(f"PDB {n}: selects {len(matched)} workloads, want 1")
            continue
        replicas = min_replicas(objs, matched[0])
        if "maxUnavailable" in s:
            mu = s["maxUnavailable"]
            allowed = math.ceil(replicas * int(mu[:-1]) / 100) if isinstance(mu, str) else int(mu)
        else:
            ma = s["minAvailable"]
            need = math.ceil(replicas * int(ma[:-1]) / 100) if isinstance(ma, str) else int(ma)
            allowed = replicas - need
        if allowed < 1:
            problems.append(
                f"PDB {n}: allows {allowed} evictions at {replicas} replicas: node drains would block"
            )
    return problems


def check_probes(objs: Sequence[Obj]) -> list[str]:
    problems = []
    for w in workloads(objs):
        for c in w.containers(init=False):
            ports = container_ports(c)
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(kind)
                if not probe:
                    continue
                where = f"{w.kind} {w.name}/{c['name']} {kind}"
                for handler in ("grpc", "httpGet", "tcpSocket"):
                    if handler not in probe:
                        continue
                    port = probe[handler]["port"]
                    if handler == "grpc" and not isinstance(port, int):
                        problems.append(f"{where}: grpc probe port must be a number, got {port!r}")
                    if port not in ports.values() and port not in ports:
                        problems.append(f"{where}: port {port!r} is not a container port ({ports})")
                    if handler == "grpc":
                        want = "readiness" if kind == "readinessProbe" else "liveness"
                        if probe["grpc"].get("service") != want:
                            problems.append(
                                f"{where}: grpc service {probe['grpc'].get('service')!r}, want {want!r}"
                            )
    return problems


def check_services(objs: Sequence[Obj]) -> list[str]:
    problems = []
    wls = workloads(objs)
    for svc in by_kind(objs, "Service"):
        n, s = svc["metadata"]["name"], svc["spec"]
        sel = s.get("selector")
        if not sel:
            problems.append(f"Service {n}: no selector")
            continue
        pods = [
            w
            for w in wls
            if w.namespace == svc["metadata"]["namespace"]
            and w.kind in ("Deployment", "StatefulSet")
            and selector_matches({"matchLabels": sel}, w.labels)
        ]
        if not pods:
            problems.append(f"Service {n}: selector {sel} matches no Deployment/StatefulSet pods")
        for p in s["ports"]:
            tp = p.get("targetPort", p["port"])
            for w in pods:
                cports = {
                    k: v for c in w.containers(init=False) for k, v in container_ports(c).items()
                }
                if tp not in cports and tp not in cports.values():
                    problems.append(
                        f"Service {n}: targetPort {tp!r} not exposed by {w.name} ({cports})"
                    )
                if isinstance(tp, str) and cports.get(tp) != p["port"]:
                    problems.append(
                        f"Service {n}: port {p['port']} != container port {tp}={cports.get(tp)}"
                    )
        if s.get("clusterIP") != "None":
            problems.append(
                f"Service {n}: not headless; gRPC clients would pin one pod per connection"
            )
    for sts in by_kind(objs, "StatefulSet"):
        names = {svc["metadata"]["name"] for svc in by_kind(objs, "Service")}
        if sts["spec"]["serviceName"] not in names:
            problems.append(f"StatefulSet {sts['metadata']['name']}: serviceName not rendered")
    return problems


def prestop_seconds(c: Obj) -> int:
    pre = (c.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    cmd = (pre.get("exec") or {}).get("command") or []
    if len(cmd) == 2 and cmd[0] == "sleep":
        return int(cmd[1])
    return 0


def check_shutdown(objs: Sequence[Obj], service_names: set[str]) -> list[str]:
    problems = []
    for w in workloads(objs):
        if w.kind != "Deployment" or w.labels.get("recserve.io/service") not in service_names:
            continue
        grace = w.spec.get("terminationGracePeriodSeconds", 30)
        for c in w.containers(init=False):
            pre = prestop_seconds(c)
            drain = float(env_of(c).get("RECSERVE_SHUTDOWN_GRACE_S", 10))
            if pre <= 0:
                problems.append(f"{w.name}: no preStop sleep; pods get traffic after SIGTERM")
            if grace < pre + drain + 1:
                problems.append(
                    f"{w.name}: terminationGracePeriodSeconds {grace} < preStop {pre} + drain {drain} + 1"
                )
    return problems


def check_security(objs: Sequence[Obj]) -> list[str]:
    problems = []
    for w in workloads(objs):
        where = f"{w.kind} {w.name}"
        ps = w.spec.get("securityContext") or {}
        if ps.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod runAsNonRoot is not true")
        if (ps.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        if w.spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        for c in w.containers():
            cs = c.get("securityContext") or {}
            cw = f"{where}/{c['name']}"
            if cs.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cw}: allowPrivilegeEscalation")
            if cs.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cw}: root filesystem is writable")
            if (cs.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append(f"{cw}: capabilities not dropped")
            if cs.get("runAsUser", ps.get("runAsUser", 0)) < 10000:
                problems.append(f"{cw}: runs with a UID below 10000")
            mounts = {m["mountPath"] for m in c.get("volumeMounts") or []}
            if "/tmp" not in mounts:
                problems.append(f"{cw}: no writable /tmp (emptyDir) with a read-only root")
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        problems.append(f"{cw}: no {r} {kind}")
    return problems


def check_m5_sizing(objs: Sequence[Obj], service_names: set[str]) -> list[str]:
    problems = []
    for w in workloads(objs):
        if w.kind != "Deployment" or w.labels.get("recserve.io/service") not in service_names:
            continue
        cpu = sum(
            parse_quantity(c["resources"]["requests"]["cpu"]) for c in w.containers(init=False)
        )
        mem = sum(
            parse_quantity(c["resources"]["requests"]["memory"]) for c in w.containers(init=False)
        )
        if cpu > NODE_ALLOCATABLE_CPU or mem > NODE_ALLOCATABLE_MEM:
            problems.append(
                f"{w.name}: requests {cpu} CPU / {mem / 2**30:.1f} GiB do not fit an m5.xlarge"
            )
        for c in w.containers(init=False):
            lim = parse_quantity(c["resources"]["limits"]["cpu"])
            req = parse_quantity(c["resources"]["requests"]["cpu"])
            if lim < req:
                problems.append(f"{w.name}: cpu limit {lim} < request {req}")
        ns = w.spec.get("nodeSelector") or {}
        if ns.get("node.kubernetes.io/instance-type") != "m5.xlarge":
            problems.append(f"{w.name}: not pinned to the m5.xlarge node group ({ns})")
        keys = {t["topologyKey"]: t for t in w.spec.get("topologySpreadConstraints") or []}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
            t = keys.get(key)
            if t is None:
                problems.append(f"{w.name}: no topology spread over {key}")
            elif not selector_matches(t["labelSelector"], w.labels):
                problems.append(
                    f"{w.name}: topology spread over {key} does not select its own pods"
                )
    return problems


def iter_env_refs(objs: Sequence[Obj]) -> Iterator[tuple[str, str, str]]:
    """(workload, kind, name) of every Secret/ConfigMap/PVC/ServiceAccount a pod uses."""
    for w in workloads(objs):
        sa = w.spec.get("serviceAccountName")
        if sa:
            yield w.name, "ServiceAccount", sa
        for v in w.spec.get("volumes") or []:
            if "persistentVolumeClaim" in v:
                yield w.name, "PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]
        for c in w.containers():
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield w.name, "Secret", ref["name"]


def check_references(objs: Sequence[Obj], external: set[tuple[str, str]]) -> list[str]:
    have = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for sts in by_kind(objs, "StatefulSet"):
        for t in sts["spec"].get("volumeClaimTemplates") or []:
            have.add(("PersistentVolumeClaim", t["metadata"]["name"]))
    return [
        f"{w}: {kind} {name} is neither rendered nor an expected pre-existing object"
        for w, kind, name in iter_env_refs(objs)
        if (kind, name) not in have
        and (kind, name) not in external
        and not (kind == "PersistentVolumeClaim" and name == "data")
    ]
