"""PNG figures for docs/benchmarks.md (matplotlib, headless)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"stack": "tab:blue", "echo": "tab:gray"}


def _steps(doc: Mapping[str, Any], label: str) -> list[dict[str, Any]]:
    return list(doc["targets"].get(label, {}).get("steps", []))


def plot_openloop(doc: Mapping[str, Any], png: Path) -> None:
    """Latency vs offered load, achieved load, CPU per request, gateway stage breakdown."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax_lat, ax_ach, ax_cpu, ax_stage = axes.flat
    for label in doc["targets"]:
        steps = _steps(doc, label)
        x = [s["offered_qps"] for s in steps]
        c = COLORS.get(label)
        for key, style in (("p50_ms", ":"), ("p99_ms", "-"), ("p999_ms", "--")):
            ax_lat.plot(
                x,
                [s["latency"][key] for s in steps],
                style,
                marker=".",
                color=c,
                label=f"{label} {key[:-3]}",
            )
        ax_ach.plot(x, [s["achieved_qps"] for s in steps], marker="o", color=c, label=label)
        cpu = [s["stack_cpu_ms_per_req"] for s in steps]
        if any(v is not None for v in cpu):
            ax_cpu.plot(
                x,
                [math.nan if v is None else v for v in cpu],
                marker="o",
                color=c,
                label=f"{label} (server processes)",
            )
        ax_cpu.plot(
            x,
            [s["generator_cpu_ms_per_req"] for s in steps],
            ":",
            marker="x",
            color=c,
            label=f"generator for {label} ({steps[0]['generator'] if steps else ''})",
        )
    for slo in doc["meta"]["slo_ms"]:
        ax_lat.axhline(slo, color="tab:red", lw=0.8, ls="--")
    # Log x: the stack and the echo floor differ by an order of magnitude in rate.
    ax_lat.set(
        xscale="log",
        yscale="log",
        xlabel="offered QPS",
        ylabel="latency from scheduled send (ms)",
        title="Latency vs offered load (open loop)",
    )
    ax_lat.legend(fontsize=7, ncol=2)
    lim = max((s["offered_qps"] for t in doc["targets"] for s in _steps(doc, t)), default=1)
    ax_ach.plot([0, lim], [0, lim], color="k", lw=0.5, ls="--", label="achieved = offered")
    ax_ach.set(xlabel="offered QPS", ylabel="achieved QPS (OK answers)", title="Throughput")
    ax_ach.legend(fontsize=8)
    ax_cpu.set(
        xscale="log",
        xlabel="offered QPS",
        ylabel="CPU ms per request",
        title="CPU per request (/proc utime+stime)",
    )
    ax_cpu.legend(fontsize=7)
    _stage_bars(ax_stage, _steps(doc, "stack"))
    fig.suptitle(f"recserve open-loop benchmark, {doc['meta']['date']}", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _stage_bars(ax: Any, steps: Sequence[Mapping[str, Any]]) -> None:
    with_stages = [s for s in steps if s.get("stages")]
    if not with_stages:
        ax.text(
            0.5,
            0.5,
            "no gateway stage metrics\n(echo only or metrics unreachable)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    stages = sorted({k for s in with_stages for k in s["stages"] if k != "total"})
    width = 0.8 / max(len(stages), 1)
    xs = range(len(with_stages))
    for j, stage in enumerate(stages):
        ax.bar(
            [x + j * width for x in xs],
            [s["stages"].get(stage, {}).get("mean_ms", 0.0) for s in with_stages],
            width,
            label=f"{stage} mean",
        )
    totals = [s["stages"].get("total", {}).get("mean_ms", math.nan) for s in with_stages]
    ax.plot([x + 0.4 - width / 2 for x in xs], totals, "k_", ms=20, label="total mean")
    ax.set_xticks(
        [x + 0.4 - width / 2 for x in xs],
        [f"{s['offered_qps']:.0f}" for s in with_stages],
        rotation=45,
    )
    ax.set(
        xlabel="offered QPS",
        ylabel="ms (gateway histogram)",
        title="Gateway stage breakdown (recserve_stage_duration_seconds)",
    )
    ax.legend(fontsize=7)


def _pareto(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Configurations not beaten on both recall and QPS by another one, by recall."""
    front = [
        p
        for p in points
        if not any(o["recall"] >= p["recall"] and o["qps"] > p["qps"] for o in points)
    ]
    return sorted(front, key=lambda p: p["recall"])


def plot_ann(doc: Mapping[str, Any], png: Path) -> None:
    """Recall@10 vs QPS (batch 1, one thread) per dataset: all points faint, Pareto bold."""
    datasets = doc["datasets"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 5), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for j, m in enumerate(ds["methods"]):
            c = f"C{j}"
            pts = m["points"]
            ax.scatter(
                [p["recall"] for p in pts], [p["qps"] for p in pts], s=10, alpha=0.3, color=c
            )
            front = _pareto(pts)
            ax.plot(
                [p["recall"] for p in front],
                [p["qps"] for p in front],
                marker="o",
                color=c,
                label=f"{m['method']} (build {m['build_s']:.0f} s, {m['index_mb']:.0f} MB)",
            )
        for t in (0.90, 0.95, 0.99):
            ax.axvline(t, color="k", lw=0.5, ls=":")
        ax.set(
            yscale="log",
            xlabel="recall@10 (vs exact dot product)",
            ylabel="QPS (batch 1, 1 thread)",
            title=ds["name"],
        )
        ax.set_xlim(
            left=max(
                0.5,
                min((p["recall"] for m in ds["methods"] for p in m["points"]), default=0.5) - 0.02,
            ),
            right=1.005,
        )
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"ANN comparison, {doc['meta']['date']}", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_hpa(doc: Mapping[str, Any], png: Path) -> None:
    """Per scenario: load and replicas per service, nodes, predicted p99."""
    scenarios = doc["scenarios"]
    fig, axes = plt.subplots(2, len(scenarios), figsize=(6 * len(scenarios), 8), squeeze=False)
    slo = doc["capacity"]["slo_ms"]
    for j, sc in enumerate(scenarios):
        s = sc["series"]
        hours = sc["duration_s"] > 4 * 3600
        t = [x / (3600 if hours else 60) for x in s["t"]]
        ax = axes[0][j]
        for k, (svc, reps) in enumerate(s["replicas"].items()):
            ax.step(t, reps, where="post", color=f"C{k}", label=f"{svc} replicas")
        ax.step(t, s["nodes"], where="post", color="k", lw=2, label="m5.xlarge nodes")
        ax2 = ax.twinx()
        ax2.plot(t, s["load"], color="tab:gray", alpha=0.5, label="offered QPS")
        ax2.set_ylabel("QPS")
        cost = sc["monthly_cost_usd"]
        ax.set(
            title=sc["name"]
            + (f": ${cost:,.0f}/month" if cost else f", max {sc['max_nodes']} nodes"),
            xlabel="hours" if hours else "minutes",
            ylabel="replicas / nodes",
        )
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1][j]
        p99 = [math.nan if v is None else v for v in s["p99_ms"]]
        over = [slo * 4 if v is None else math.nan for v in s["p99_ms"]]
        ax.plot(t, p99, color="tab:blue", label="predicted p99")
        ax.plot(t, over, "r|", label="beyond measured capacity")
        ax.axhline(slo, color="tab:red", ls="--", lw=0.8, label=f"SLO {slo:.0f} ms")
        ax.set(
            xlabel="hours" if hours else "minutes",
            ylabel="ms",
            yscale="log",
            title=f"{sc['seconds_p99_over_slo']} s over SLO",
        )
        ax.legend(fontsize=7)
    fig.suptitle(f"HPA simulation from {doc['capacity']['source']}", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
