"""Render the Helm chart offline (Helm v4 SDK through `helm-python-sdk`, no helm binary).

    python -m tools.chart render [--out k8s/manifests]   # refresh k8s/manifests
    python -m tools.chart check                          # fail if k8s/ drifted
    python -m tools.chart rules --out FILE               # rule groups for promtool

Used by `make render`, `make chart-check`, tools.dashboards_check and tests/k8s.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import helm_python
import yaml

from tools import REPO_ROOT

CHART_DIR = REPO_ROOT / "helm" / "recserve"
K8S_DIR = REPO_ROOT / "k8s"
MANIFESTS_DIR = K8S_DIR / "manifests"
K8S_VALUES = K8S_DIR / "values.yaml"
RELEASE = "recserve"
NAMESPACE = "recserve"

# name -> values files (relative to the chart), rendered and validated by tests/k8s.
SCENARIOS: dict[str, list[str]] = {
    "defaults": [],
    "production": ["ci/production.yaml"],
    "external-redis": ["ci/external-redis.yaml"],
    "no-autoscaling": ["ci/no-autoscaling.yaml"],
}


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_values(files: Iterable[str | Path], chart_dir: Path = CHART_DIR) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in files:
        p = Path(f)
        if not p.is_absolute():
            p = chart_dir / p
        values = deep_merge(values, yaml.safe_load(p.read_text()) or {})
    return values


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    chart_dir: Path = CHART_DIR,
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), like `helm template`."""
    chart = helm_python.Chart.load(str(chart_dir))
    rendered: dict[str, str] = chart.render(dict(values or {}), name=release, namespace=namespace)
    return rendered


def objects(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered manifests, in template order."""
    out: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        out.extend(d for d in yaml.safe_load_all(rendered[path]) if d)
    return out


def render_scenario(name: str, **kw: Any) -> dict[str, str]:
    return render(load_values(SCENARIOS[name]), **kw)


def manifest_files(rendered: Mapping[str, str]) -> dict[str, str]:
    """k8s/manifests/<file> -> content: one file per template; NOTES.txt and the `helm test`
    pod (templates/tests/) are left out."""
    files: dict[str, str] = {}
    for path, text in sorted(rendered.items()):
        rel = path.split("/templates/", 1)[1]
        if not rel.endswith(".yaml") or rel.startswith("tests/") or not text.strip():
            continue
        files[rel] = (
            "# Rendered from helm/recserve with k8s/values.yaml by `make render`. Do not edit.\n"
            + text.lstrip("\n")
        )
    return files


def expected_manifests() -> dict[str, str]:
    return manifest_files(render(load_values([K8S_VALUES])))


def write_manifests(out: Path = MANIFESTS_DIR) -> list[str]:
    files = expected_manifests()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.yaml"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (out / name).write_text(text)
    return sorted(files)


def drift(out: Path = MANIFESTS_DIR) -> list[str]:
    """Unified diffs between k8s/manifests and a fresh render (empty when in sync)."""
    want = expected_manifests()
    have = {p.name: p.read_text() for p in out.glob("*.yaml")} if out.exists() else {}
    diffs = []
    for name in sorted(set(want) | set(have)):
        a, b = have.get(name, ""), want.get(name, "")
        if a != b:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        a.splitlines(True), b.splitlines(True), f"k8s/manifests/{name}", "render"
                    )
                )
            )
    return diffs


def rule_groups(objs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The PrometheusRule spec as a plain Prometheus rule file ({groups: [...]})."""
    rules = [o for o in objs if o.get("kind") == "PrometheusRule"]
    return {"groups": [g for r in rules for g in r["spec"]["groups"]]}


# ServiceMonitor relabeling keys (Prometheus Operator) -> Prometheus relabel_config keys.
_RELABEL_KEYS = {
    "sourceLabels": "source_labels",
    "targetLabel": "target_label",
    "separator": "separator",
    "regex": "regex",
    "replacement": "replacement",
    "modulus": "modulus",
    "action": "action",
}


def scrape_relabel_configs(objs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ServiceMonitor endpoints' relabelings as Prometheus `relabel_configs`."""
    monitors = [o for o in objs if o.get("kind") == "ServiceMonitor"]
    return [
        {_RELABEL_KEYS[k]: v for k, v in r.items()}
        for m in monitors
        for e in m["spec"]["endpoints"]
        for r in e.get("relabelings", [])
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.chart")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="write k8s/manifests from the chart + k8s/values.yaml")
    r.add_argument("--out", type=Path, default=MANIFESTS_DIR)
    sub.add_parser("check", help="exit 1 if k8s/manifests differs from a fresh render")
    ru = sub.add_parser("rules", help="write the rendered alert/recording rules for promtool")
    ru.add_argument("--out", type=Path, required=True)
    ru.add_argument("--scenario", default="defaults", choices=sorted(SCENARIOS))
    args = p.parse_args(argv)
    if args.cmd == "render":
        names = write_manifests(args.out)
        print(f"wrote {len(names)} files to {args.out}")
        return 0
    if args.cmd == "check":
        diffs = drift()
        for d in diffs:
            sys.stdout.write(d)
        if diffs:
            print("k8s/manifests is out of date: run `make render`", file=sys.stderr)
            return 1
        print("k8s/manifests matches the chart")
        return 0
    groups = rule_groups(objects(render_scenario(args.scenario)))
    args.out.write_text(yaml.safe_dump(groups, sort_keys=False, width=1000))
    print(f"wrote {sum(len(g['rules']) for g in groups['groups'])} rules to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
