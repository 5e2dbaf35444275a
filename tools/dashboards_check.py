"""Prove the Grafana dashboards, alerts and prometheus-adapter rules against a real Prometheus.

Starts the `prometheus` binary (Debian package) on a free loopback port with a generated
scrape config for the given metrics endpoints, loads the chart's rendered rule groups, waits
for a few scrapes and rule evaluations, then evaluates through the HTTP API:
  - every panel query of helm/recserve/dashboards/*.json (once per value of a custom
    template variable such as the stage dashboard's `component`),
  - every recording rule, and for every alert the series its expression compares,
  - every prometheus-adapter metricsQuery (helm/prometheus-adapter-values.yaml),
and requires each to return data. Every recserve/process metric a query names must exist
(so a `... or ... * 0` fallback cannot hide a metric that is never exported). Queries on
kube-state-metrics (`kube_*`) exist only in a cluster: they must parse and evaluate, and are
reported as cluster-only.

    python -m tools.dashboards_check --targets gateway=127.0.0.1:9464,candidates=127.0.0.1:9465
    python -m tools.dashboards_check --stack-json run/stack.json   # after `make up`
    python -m tools.dashboards_check --simulate      # emulated exporters (tests)

Each target is scraped as in a cluster: `namespace` and `pod` target labels, the pod labels
of the component's Deployment as Kubernetes service discovery meta labels, and the rendered
ServiceMonitor's relabelings, which turn them into the `component` target label.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import REPO_ROOT, chart, metrics_sim

DASHBOARDS_DIR = REPO_ROOT / "helm" / "recserve" / "dashboards"
ADAPTER_VALUES = REPO_ROOT / "helm" / "prometheus-adapter-values.yaml"
# Pod label naming the component (services.<key> of the chart values), as in the Deployments.
SERVICE_LABEL = "recserve.io/service"
CLUSTER_ONLY_PREFIXES = ("kube_", "container_", "kubelet_", "node_")
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}


@dataclass
class Query:
    source: str
    expr: str
    # "data": must return series; "cluster": kube-state-metrics etc., must evaluate;
    # "valid": must evaluate (an alert expression: empty unless firing)
    expect: str = "data"


@dataclass
class Result:
    query: Query
    status: str  # ok | empty | error | cluster-only | not-firing
    series: int = 0
    detail: str = ""


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    missing_metrics: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status in ("empty", "error")]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.missing_metrics

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines = [f"{len(self.results)} queries: {parts}"]
        for r in self.results:
            if r.status != "ok":
                lines.append(f"  {r.status:12} {r.query.source}: {r.detail or r.query.expr}")
        if self.missing_metrics:
            lines.append(f"  metrics never exported: {', '.join(self.missing_metrics)}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- queries


def substitute(expr: str, namespace: str, rate_interval: str = "1m") -> str:
    """Grafana template variables -> concrete values."""
    out = expr.replace("${namespace}", namespace).replace("$namespace", namespace)
    for var in ("$__rate_interval", "$__interval", "$__range"):
        out = out.replace(var, rate_interval)
    return out


def metric_names(expr: str) -> set[str]:
    """Metric (and recording rule) names an expression selects."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def is_cluster_only(expr: str) -> bool:
    return any(n.startswith(CLUSTER_ONLY_PREFIXES) for n in metric_names(expr))


def custom_variable_values(board: dict[str, Any]) -> list[dict[str, str]]:
    """Every combination of the board's custom template variables ([{}] when it has none)."""
    combos: list[dict[str, str]] = [{}]
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "custom":
            values = [v.strip() for v in var["query"].split(",") if v.strip()]
            combos = [{**c, var["name"]: v} for c in combos for v in values]
    return combos


def dashboard_queries(files: Iterable[Path] | None = None) -> list[Query]:
    """Panel queries; a board with custom variables yields each query once per value,
    sourced as `<board>[var=value] / <panel> [refId]`."""
    out = []
    for f in sorted(files if files is not None else DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(Path(f).read_text())
        for combo in custom_variable_values(board):
            tag = "".join(f"[{k}={v}]" for k, v in combo.items())
            for panel in board.get("panels", []):
                for t in panel.get("targets", []):
                    if not t.get("expr"):
                        continue
                    expr = t["expr"]
                    for k, v in combo.items():
                        expr = expr.replace(f"${{{k}}}", v).replace(f"${k}", v)
                    src = f"{Path(f).stem}{tag} / {panel['title']} [{t.get('refId', '?')}]"
                    out.append(Query(src, expr, "cluster" if is_cluster_only(expr) else "data"))
    return out


def rule_queries(groups: dict[str, Any]) -> list[Query]:
    """Recording rules as they are; for alerts, the series each alert compares."""
    out = []
    for g in groups["groups"]:
        for r in g["rules"]:
            if "record" in r:
                out.append(Query(f"rule {r['record']}", r["record"]))
                continue
            selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\})", r["expr"])
            if not selectors:
                selectors = sorted(metric_names(r["expr"]))
            for sel in selectors:
                expect = "cluster" if is_cluster_only(sel) else "data"
                out.append(Query(f"alert {r['alert']} <- {sel}", sel, expect))
            out.append(Query(f"alert {r['alert']} (expression)", r["expr"], "valid"))
    return out


def adapter_queries(namespace: str, values_file: Path = ADAPTER_VALUES) -> list[Query]:
    cfg = yaml.safe_load(values_file.read_text())
    out = []
    for rule in cfg["rules"]["custom"]:
        series = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)  # type: ignore[union-attr]
        q = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod!=""')
            .replace("<<.GroupBy>>", "pod")
        )
        out.append(Query(f"adapter {rule['name']['as']}", q))
    return out


# -------------------------------------------------------------------------- Prometheus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    component: str  # gateway, embedding_store, candidates, ranking
    address: str  # host:port

    @classmethod
    def parse(cls, text: str, index: int) -> Target:
        if "=" in text:
            component, addr = text.split("=", 1)
            return cls(component, addr)
        return cls(f"target{index}", text)


@dataclass
class ScrapeSetup:
    """What the chart gives Prometheus in a cluster: the rule groups of its PrometheusRule,
    the relabelings of its ServiceMonitor, and per component the pod labels Kubernetes
    service discovery exposes to them."""

    rule_groups: dict[str, Any]
    relabel_configs: list[dict[str, Any]]
    pod_labels: dict[str, dict[str, str]]

    @classmethod
    def from_objects(cls, objs: Sequence[dict[str, Any]]) -> ScrapeSetup:
        pod_labels = {}
        for o in objs:
            if o["kind"] == "Deployment":
                labels = o["spec"]["template"]["metadata"]["labels"]
                pod_labels[labels[SERVICE_LABEL]] = labels
        return cls(chart.rule_groups(objs), chart.scrape_relabel_configs(objs), pod_labels)

    @classmethod
    def render(cls, namespace: str) -> ScrapeSetup:
        """From the chart rendered with its default values into `namespace`."""
        return cls.from_objects(chart.objects(chart.render({}, namespace=namespace)))

    def meta_labels(self, component: str) -> dict[str, str]:
        """`__meta_kubernetes_pod_label_<name>` of the component's pods (names sanitized
        like Prometheus does); empty for a component the chart does not deploy."""
        return {
            "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
            for k, v in self.pod_labels.get(component, {}).items()
        }


class Prometheus:
    """A real Prometheus server in a temporary directory (stopped on exit)."""

    def __init__(
        self,
        targets: Sequence[Target],
        namespace: str,
        setup: ScrapeSetup,
        binary: str | None = None,
        scrape_interval: str = "1s",
    ) -> None:
        self.binary = binary or shutil.which("prometheus") or "/usr/bin/prometheus"
        self.targets, self.namespace = targets, namespace
        self.setup, self.rule_groups = setup, setup.rule_groups
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        pods: dict[str, int] = {}
        static = []
        for t in self.targets:
            i = pods.get(t.component, 0)
            pods[t.component] = i + 1
            static.append(
                {
                    "targets": [t.address],
                    "labels": {
                        "namespace": self.namespace,
                        "pod": f"{t.component.replace('_', '-')}-{i}",
                        **self.setup.meta_labels(t.component),
                    },
                }
            )
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": "recserve",
                    "metrics_path": "/metrics",
                    "static_configs": static,
                    "relabel_configs": self.setup.relabel_configs,
                }
            ],
        }
        if self.rule_groups:
            cfg["rule_files"] = ["rules.yaml"]
        return cfg

    def __enter__(self) -> Prometheus:
        self._dir = tempfile.TemporaryDirectory(prefix="recserve-prom-")
        d = Path(self._dir.name)
        (d / "prometheus.yml").write_text(yaml.safe_dump(self.config(), sort_keys=False))
        if self.rule_groups:
            groups = json.loads(json.dumps(self.rule_groups))
            for g in groups["groups"]:
                g["interval"] = self.scrape_interval  # evaluate quickly here
            (d / "rules.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
        self._log = open(d / "prometheus.log", "wb")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=d,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(d / 'prometheus.log').read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r,
            ):
                if r.status == 200:
                    return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("prometheus did not become ready in 30 s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise RuntimeError(body.get("error", body))
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def wait_for(self, expr: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if self.query(expr):
                    return True
            time.sleep(0.5)
        return False


def evaluate(prom: Prometheus, queries: Sequence[Query], namespace: str) -> Report:
    report = Report()
    names: set[str] = set()
    for q in queries:
        expr = substitute(q.expr, namespace)
        try:
            res = prom.query(expr)
        except RuntimeError as e:
            report.results.append(Result(q, "error", detail=str(e)[:300]))
            continue
        if q.expect != "cluster":
            names |= {n for n in metric_names(expr) if not n.startswith(CLUSTER_ONLY_PREFIXES)}
        if res:
            status = "ok"
        else:
            status = {"data": "empty", "cluster": "cluster-only", "valid": "not-firing"}[q.expect]
        report.results.append(Result(q, status, len(res)))
    for n in sorted(names):
        if not prom.query(f'count({{__name__="{n}"}})'):
            report.missing_metrics.append(n)
    return report


def run_check(
    targets: Sequence[Target],
    namespace: str,
    setup: ScrapeSetup,
    *,
    warmup_s: float = 8.0,
    timeout_s: float = 60.0,
) -> Report:
    queries = dashboard_queries() + rule_queries(setup.rule_groups) + adapter_queries(namespace)
    with Prometheus(targets, namespace, setup) as prom:
        # every target up, then a few scrapes and rule evaluations so rate() has samples
        n = len(targets)
        if not prom.wait_for(f"count(up == 1) == {n}", timeout_s):
            up = prom.query("up")
            raise RuntimeError(f"not all targets are up: {up}")
        prom.wait_for('count({__name__=~"recserve:.+"})', timeout_s)
        time.sleep(warmup_s)
        return evaluate(prom, queries, namespace)


@contextlib.contextmanager
def simulated_targets(duration_s: float = 300.0) -> Iterator[list[Target]]:
    """One emulated exporter (tools.metrics_sim) per component, each in a child process."""
    procs: list[subprocess.Popen[str]] = []
    try:
        targets = []
        for component in metrics_sim.COMPONENTS:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tools.metrics_sim"),
                    *("--component", component, "--duration", str(duration_s)),
                ],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            port = proc.stdout.readline().strip()
            if not port.isdigit():
                raise RuntimeError(f"metrics_sim {component} did not start (exit {proc.poll()})")
            targets.append(Target(component, f"127.0.0.1:{port}"))
        yield targets
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def background_load(
    gateway: str, *, max_seconds: float = 120.0, max_requests: int = 20_000, rate: float = 50.0
) -> Iterator[dict[str, int]]:
    """Recommend calls against `gateway` in a thread until the block exits (bounded in time
    and count); yields counters {"ok", "error"}."""
    import threading

    from recserve.client import RecommenderClient

    stop = threading.Event()
    counts = {"ok": 0, "error": 0}

    def run() -> None:
        deadline = time.monotonic() + max_seconds
        with RecommenderClient(gateway, timeout_s=2.0) as client:
            i = 0
            while not stop.is_set() and i < max_requests and time.monotonic() < deadline:
                try:
                    client.recommend(str(1 + i % 300), k=10)
                    counts["ok"] += 1
                except Exception:
                    counts["error"] += 1
                i += 1
                stop.wait(1.0 / rate)

    thread = threading.Thread(target=run, name="dashboards-check-load", daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.dashboards_check", description=__doc__.split("\n\n")[0]
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--targets", help="comma list of [component=]host:port metrics endpoints")
    src.add_argument(
        "--stack-json", type=Path, help="run/stack.json written by `make up` (its `metrics` map)"
    )
    src.add_argument("--simulate", action="store_true", help="scrape emulated exporters instead")
    p.add_argument("--namespace", default="recserve", help="namespace label given to the targets")
    p.add_argument("--warmup", type=float, default=8.0, help="seconds of scraping before queries")
    p.add_argument(
        "--load-gateway",
        help="host:port of a gateway to send Recommend calls to during the check "
        "(default with --stack-json: the stack's gateway)",
    )
    p.add_argument(
        "--load-cmd",
        help="shell command run in the background during the check (e.g. a load generator)",
    )
    args = p.parse_args(argv)

    setup = ScrapeSetup.render(args.namespace)
    load = subprocess.Popen(args.load_cmd, shell=True) if args.load_cmd else None
    try:
        if args.simulate:
            with simulated_targets() as targets:
                report = run_check(targets, args.namespace, setup, warmup_s=args.warmup)
        else:
            gateway = args.load_gateway
            if args.stack_json:
                info = json.loads(args.stack_json.read_text())
                targets = [Target(c, addr) for c, addr in info["metrics"].items()]
                gateway = gateway or info.get("gateway")
            else:
                items = [t.strip() for t in args.targets.split(",") if t.strip()]
                targets = [Target.parse(t, i) for i, t in enumerate(items)]
            with contextlib.ExitStack() as stack:
                if gateway:
                    counts = stack.enter_context(background_load(gateway))
                report = run_check(targets, args.namespace, setup, warmup_s=args.warmup)
                if gateway:
                    print(f"load: {counts['ok']} Recommend calls ok, {counts['error']} failed")
    finally:
        if load is not None:
            load.terminate()
            load.wait()
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
