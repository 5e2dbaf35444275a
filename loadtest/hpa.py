"""HorizontalPodAutoscaler (autoscaling/v2) simulator, capacity -> HPA targets -> cost.

The controller logic mirrors kube-controller-manager's podautoscaler (replica_calculator.go
`calcPlainMetricReplicas`, horizontal.go `stabilizeRecommendationWithBehaviors` and
`convertDesiredReplicasWithBehaviorRate`): 15 s sync, 10 % tolerance, unready pods counted
as 0 on scale-up, pods without metrics as 0 on scale-up and at target on scale-down,
stabilization windows, Pods/Percent scaling policies per period. Around it: pods that need
a start delay before they are ready, and a Prometheus -> adapter pipeline whose value lags
(scrape interval, rate() window, adapter cache).

    python -m loadtest.hpa --openloop loadtest/results/openloop.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from loadtest import stats

# --- controller ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingPolicy:
    type: Literal["Pods", "Percent"]
    value: int
    period_s: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_s: int
    policies: tuple[ScalingPolicy, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"


# Kubernetes defaults (autoscaling/v2 behavior left empty).
DEFAULT_SCALE_UP = ScalingRules(
    0, (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)), "Max"
)
DEFAULT_SCALE_DOWN = ScalingRules(300, (ScalingPolicy("Percent", 100, 15),), "Max")


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    target: float  # per-pod average value of the metric (e.g. requests/s per pod)
    tolerance: float = 0.1
    sync_s: int = 15
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


def plain_metric_replicas(
    metrics: Mapping[str, float],
    unready: set[str],
    current: int,
    target: float,
    tolerance: float,
    missing: set[str] | None = None,
) -> int:
    """calcPlainMetricReplicas: `metrics` holds the ready pods that reported a value."""
    missing = missing or set()
    if not metrics:
        # The real controller errors out and keeps the scale unchanged.
        return current
    ratio = sum(metrics.values()) / len(metrics) / target
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * len(metrics))
    filled = dict(metrics)
    for pod in missing:
        filled[pod] = target if ratio < 1.0 else 0.0
    if scale_up_with_unready:
        for pod in unready:
            filled[pod] = 0.0
    new_ratio = sum(filled.values()) / len(filled) / target
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    new = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


@dataclass
class HpaController:
    """The stateful part: recommendation history and recent scale events."""

    spec: HpaSpec
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def stabilize(self, now: float, desired: int, current: int) -> int:
        """Up: the lowest recommendation in the up window; down: the highest in the down one."""
        up_cut = now - self.spec.scale_up.stabilization_s
        down_cut = now - self.spec.scale_down.stabilization_s
        up_rec = down_rec = desired
        for t, rec in self.recommendations:
            if t > up_cut:
                up_rec = min(up_rec, rec)
            if t > down_cut:
                down_rec = max(down_rec, rec)
        # Keep history only as long as the longer window needs it.
        self.recommendations = [
            (t, r) for t, r in self.recommendations if t > min(up_cut, down_cut)
        ]
        self.recommendations.append((now, desired))
        return min(max(current, up_rec), down_rec)

    @staticmethod
    def _changed(events: Sequence[tuple[float, int]], now: float, period: int) -> int:
        return sum(c for t, c in events if t > now - period)

    def _limit(self, now: float, current: int, rules: ScalingRules, up: bool) -> int:
        if rules.select == "Disabled":
            return current
        pick = (
            (min if rules.select == "Min" else max)
            if up
            else (max if rules.select == "Min" else min)
        )
        proposals = []
        for p in rules.policies:
            start = (
                current
                - self._changed(self.up_events, now, p.period_s)
                + self._changed(self.down_events, now, p.period_s)
            )
            if up:
                proposals.append(
                    start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
                )
            else:
                proposals.append(
                    start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
                )
        return pick(proposals)

    def rate_limit(self, now: float, desired: int, current: int) -> int:
        s = self.spec
        if desired > current:
            limit = max(self._limit(now, current, s.scale_up, up=True), current)
            return min(desired, s.max_replicas, limit)
        if desired < current:
            limit = min(self._limit(now, current, s.scale_down, up=False), current)
            return max(desired, s.min_replicas, limit)
        return desired

    def decide(self, now: float, raw_desired: int, current: int) -> int:
        """Normalize a metric recommendation: stabilize, then rate-limit and clamp, record."""
        desired = self.stabilize(now, raw_desired, current)
        desired = self.rate_limit(now, desired, current)
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        horizon = now - 1800  # longer than any policy period
        self.up_events = [e for e in self.up_events if e[0] > horizon]
        self.down_events = [e for e in self.down_events if e[0] > horizon]
        return desired


# --- cluster around it -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """Metric path: Prometheus scrape -> rate(...[window]) -> prometheus-adapter -> HPA."""

    scrape_s: int = 15
    rate_window_s: int = 60
    adapter_delay_s: int = 15  # adapter relist/cache + controller informer delay


@dataclass
class SimResult:
    t: np.ndarray
    load: np.ndarray
    replicas: np.ndarray  # spec.replicas
    ready: np.ndarray
    per_pod: np.ndarray  # actual load per ready pod
    seen: np.ndarray  # metric value the HPA last saw (per-pod average)


def simulate(
    load: Callable[[float], float],
    duration_s: int,
    spec: HpaSpec,
    start_delay_s: int = 30,
    pipeline: Pipeline = Pipeline(),
    initial: int | None = None,
) -> SimResult:
    """Replay total load (per second) through the HPA; ready pods share it evenly.

    Every ready pod then has the same counter increase, so one cumulative per-pod counter G,
    sampled at scrapes, gives each pod's rate() over the scrapes since it became ready.
    """
    n0 = initial if initial is not None else spec.min_replicas
    pods: dict[str, float] = {f"p{i}": -1e9 for i in range(n0)}  # name -> ready time
    next_id = n0
    controller = HpaController(spec)
    scrapes: list[tuple[float, float]] = []  # (time, G)
    g = 0.0
    out_t, out_l, out_r, out_ready, out_pp, out_seen = [], [], [], [], [], []
    seen = math.nan
    for t in range(duration_s):
        total = load(t)
        ready = [p for p, rt in pods.items() if rt <= t]
        per_pod = total / len(ready) if ready else math.inf
        g += per_pod if ready else 0.0
        if t % pipeline.scrape_s == 0:
            scrapes.append((t, g))
            scrapes = [
                s
                for s in scrapes
                if s[0]
                > t - pipeline.rate_window_s - 2 * pipeline.adapter_delay_s - pipeline.scrape_s
            ]
        if t % spec.sync_s == 0 and t > 0:
            visible_until = t - pipeline.adapter_delay_s
            window = [
                s for s in scrapes if visible_until - pipeline.rate_window_s < s[0] <= visible_until
            ]
            metrics: dict[str, float] = {}
            unready: set[str] = set()
            missing: set[str] = set()
            for p, rt in pods.items():
                if rt > t:
                    unready.add(p)
                    continue
                mine = [s for s in window if s[0] >= rt]
                if len(mine) < 2:
                    missing.add(p)  # rate() needs two samples since the pod appeared
                    continue
                metrics[p] = (mine[-1][1] - mine[0][1]) / (mine[-1][0] - mine[0][0])
            if metrics:
                seen = sum(metrics.values()) / len(metrics)
            raw = plain_metric_replicas(
                metrics, unready, len(pods), spec.target, spec.tolerance, missing
            )
            desired = controller.decide(t, raw, len(pods))
            while len(pods) < desired:
                pods[f"p{next_id}"] = t + start_delay_s
                next_id += 1
            if len(pods) > desired:
                # ReplicaSet deletes not-yet-ready and newest pods first.
                victims = sorted(pods, key=lambda p: (pods[p] <= t, -pods[p]))[
                    : len(pods) - desired
                ]
                for p in victims:
                    del pods[p]
        out_t.append(t)
        out_l.append(total)
        out_r.append(len(pods))
        out_ready.append(len(ready))
        out_pp.append(per_pod)
        out_seen.append(seen)
    return SimResult(
        *(
            np.asarray(a, dtype=np.float64)
            for a in (out_t, out_l, out_r, out_ready, out_pp, out_seen)
        )
    )


# --- load shapes -----------------------------------------------------------------------------

DAY_S = 86_400


def diurnal(queries_per_day: float = 84e6, peak_to_mean: float = 1.5) -> Callable[[float], float]:
    """Sinusoid over the day, lowest at 00:00 and highest at 12:00, integrating to the total."""
    mean = queries_per_day / DAY_S
    amp = peak_to_mean - 1.0
    return lambda t: mean * (1.0 - amp * math.cos(2 * math.pi * t / DAY_S))


def spike(
    base: float, factor: float = 3.0, at_s: int = 1800, length_s: int = 1800
) -> Callable[[float], float]:
    """Step from base to factor x base at at_s, back after length_s: a sudden 3x spike."""
    return lambda t: base * (factor if at_s <= t < at_s + length_s else 1.0)


# --- capacity model from the open-loop benchmark ---------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """What the open-loop benchmark says one pod of each service can do."""

    source: str
    slo_ms: float
    bench_cpus: int
    max_qps_at_slo: float
    utilization_at_slo: float  # our processes' (stack + generator) share of the bench CPUs
    cpu_ms_per_req: dict[str, float]  # per service, at that rate
    p99_vs_utilization: dict[float, float]  # that share -> p99 ms (monotone envelope)
    p50_at_slo_ms: float
    p99_at_slo_ms: float


def capacity_from_openloop(doc: Mapping[str, Any], slo_ms: float, cpus: int) -> Capacity:
    if not doc.get("valid", False):
        # Capacity taken beside other work came out 5x too low once; targets and cost built
        # on it were wrong. Only a run whose every step was quiet may set them.
        raise SystemExit(
            "openloop result is not valid (taken while other tenants used the machine, or by "
            "a version that did not check): re-run `make bench-full` on a quiet machine"
        )
    label = "stack" if "stack" in doc["targets"] else "echo"
    res = doc["targets"][label]
    best = res["best_rate"].get(str(int(slo_ms)))
    if best is None:
        raise SystemExit(f"openloop result has no rate meeting p99 <= {slo_ms} ms")
    steps = res["steps"]
    at = next(s for s in steps if s["offered_qps"] == best)

    def own_share(s: Mapping[str, Any]) -> float:
        # Our own CPU, not the machine's: other tenants of the shared bench box only make
        # the measured latency worse at a given share, so this errs on the safe side.
        return min(1.0, ((s["stack_cores"] or 0.0) + s["generator_cores"]) / cpus)

    # Every step the stack kept up with, past the SLO too, so a spike's latency is
    # predicted rather than only flagged; a running max makes noisy p99s monotone (safe side).
    kept_up = sorted(
        (own_share(s), s["latency"]["p99_ms"])
        for s in steps
        if s["errors"] == 0 and s["achieved_qps"] >= 0.95 * s["offered_qps"]
    )
    curve: dict[float, float] = {}
    worst = 0.0
    for share, p99 in kept_up:
        worst = max(worst, p99)
        curve[share] = worst
    return Capacity(
        source=f"{label} ({doc['meta']['date']})" + ("" if label == "stack" else ": ECHO STAND-IN"),
        slo_ms=slo_ms,
        bench_cpus=cpus,
        max_qps_at_slo=best,
        utilization_at_slo=own_share(at),
        cpu_ms_per_req={k: v for k, v in at["stack_cpu_ms_per_req_by_process"].items() if v > 0},
        p99_vs_utilization=dict(sorted(curve.items())),
        p50_at_slo_ms=at["latency"]["p50_ms"],
        p99_at_slo_ms=at["latency"]["p99_ms"],
    )


@dataclass(frozen=True)
class Sizing:
    pod_cpu: float = 1.0  # one Python event loop uses at most one core
    headroom: float = 0.65  # HPA target = 65 % of the per-pod rate at the SLO
    node_cpu: float = 3.92  # m5.xlarge allocatable
    node_reserved_cpu: float = 0.3  # daemonsets (CNI, kube-proxy, node exporter, log agent)
    price_per_node_hour: float = 0.192  # m5.xlarge on-demand, us-east-1
    fixed_pods_cpu: float = 1.0  # Redis
    hours_per_month: float = 730.0


def derive_targets(cap: Capacity, sizing: Sizing) -> dict[str, dict[str, Any]]:
    """Per service: per-pod requests/s a pod sustains at the SLO, and the HPA target.

    A pod of service s at r requests/s keeps r * cpu_ms_s / 1000 of its CPU busy; the bench
    met the SLO up to machine utilization U, so a pod's rate at the SLO is
    U * pod_cpu * 1000 / cpu_ms_s, and the target keeps `headroom` of that for the metric
    lag and pod start delay (the simulator checks it is enough).
    """
    out = {}
    for service, ms in cap.cpu_ms_per_req.items():
        if service == "redis":
            continue
        at_slo = cap.utilization_at_slo * sizing.pod_cpu * 1000.0 / ms
        out[service] = {
            "cpu_ms_per_request": ms,
            "rps_per_pod_at_slo": at_slo,
            "target_rps_per_pod": sizing.headroom * at_slo,
            "target_cpu_utilization_percent": round(100 * sizing.headroom * cap.utilization_at_slo),
        }
    return out


def nodes_for(cpu: float, sizing: Sizing) -> int:
    return math.ceil((cpu + sizing.fixed_pods_cpu) / (sizing.node_cpu - sizing.node_reserved_cpu))


def run_scenario(
    name: str,
    load: Callable[[float], float],
    duration_s: int,
    targets: Mapping[str, Mapping[str, Any]],
    cap: Capacity,
    sizing: Sizing,
    start_delay_s: int,
    pipeline: Pipeline,
    max_replicas: int,
) -> dict[str, Any]:
    sims = {}
    for service, tg in targets.items():
        spec = HpaSpec(min_replicas=2, max_replicas=max_replicas, target=tg["target_rps_per_pod"])
        initial = max(2, math.ceil(load(0) / tg["target_rps_per_pod"]))
        sims[service] = simulate(load, duration_s, spec, start_delay_s, pipeline, initial)
    t = next(iter(sims.values())).t
    # A request's p99 is predicted from its busiest stage: the utilization of the service
    # whose pods are most loaded, read off the bench's p99-vs-utilization curve.
    util = np.max(
        [sims[s].per_pod * cap.cpu_ms_per_req[s] / 1000.0 / sizing.pod_cpu for s in sims],
        axis=0,
    )
    p99 = np.array([stats.interpolate_curve(u, cap.p99_vs_utilization) for u in util])
    pods_cpu = np.sum([sims[s].replicas for s in sims], axis=0) * sizing.pod_cpu
    nodes = np.array([nodes_for(c, sizing) for c in pods_cpu])
    node_hours = float(nodes.sum()) / 3600.0
    step = max(1, duration_s // 2000)  # keep the JSON small
    return {
        "name": name,
        "duration_s": duration_s,
        "start_delay_s": start_delay_s,
        "pipeline": asdict(pipeline),
        "peak_qps": float(max(sims[next(iter(sims))].load)),
        "mean_qps": float(np.mean(sims[next(iter(sims))].load)),
        "max_replicas": {s: int(sims[s].replicas.max()) for s in sims},
        "mean_replicas": {s: float(sims[s].replicas.mean()) for s in sims},
        "mean_nodes": float(nodes.mean()),
        "max_nodes": int(nodes.max()),
        "node_hours": node_hours,
        # A month of this scenario only makes sense for the daily curve.
        "monthly_cost_usd": (
            float(nodes.mean()) * sizing.hours_per_month * sizing.price_per_node_hour
            if duration_s >= DAY_S
            else None
        ),
        "seconds_p99_over_slo": int(np.sum(p99 > cap.slo_ms)),
        "seconds_over_capacity": int(np.sum(~np.isfinite(p99))),
        "p99_ms_max_finite": float(np.max(p99[np.isfinite(p99)]))
        if np.isfinite(p99).any()
        else None,
        "series": {
            "t": t[::step].tolist(),
            "load": sims[next(iter(sims))].load[::step].tolist(),
            "replicas": {s: sims[s].replicas[::step].tolist() for s in sims},
            "ready": {s: sims[s].ready[::step].tolist() for s in sims},
            "nodes": nodes[::step].tolist(),
            "p99_ms": [x if math.isfinite(x) else None for x in p99[::step]],
        },
    }


def static_cost(
    peak_qps: float, targets: Mapping[str, Mapping[str, Any]], sizing: Sizing
) -> dict[str, Any]:
    """Fixed replicas sized for the peak at the same per-pod targets (no autoscaling)."""
    pods = {s: max(2, math.ceil(peak_qps / tg["target_rps_per_pod"])) for s, tg in targets.items()}
    nodes = nodes_for(sum(pods.values()) * sizing.pod_cpu, sizing)
    return {
        "pods": pods,
        "nodes": nodes,
        "monthly_cost_usd": nodes * sizing.hours_per_month * sizing.price_per_node_hour,
    }


def helm_targets(
    targets: Mapping[str, Mapping[str, Any]], cap: Capacity, sizing: Sizing, max_replicas: int
) -> dict[str, Any]:
    """The JSON the chart copies into values: autoscaling/v2 fields, per service."""
    services = {}
    for s, tg in targets.items():
        services[s] = {
            "resources": {
                "requests": {"cpu": f"{int(sizing.pod_cpu * 1000)}m"},
                "limits": {"cpu": f"{int(sizing.pod_cpu * 1000)}m"},
            },
            "autoscaling": {
                "enabled": True,
                "minReplicas": 2,
                "maxReplicas": max_replicas,
                # Preferred: per-pod request rate via prometheus-adapter.
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "recserve_requests_per_second"},
                            "target": {
                                "type": "AverageValue",
                                "averageValue": f"{int(tg['target_rps_per_pod'])}",
                            },
                        },
                    }
                ],
                # Fallback without an adapter: the same operating point as CPU utilization.
                "cpuFallback": {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": tg["target_cpu_utilization_percent"],
                        },
                    },
                },
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Max",
                        "policies": [
                            {"type": "Pods", "value": 4, "periodSeconds": 15},
                            {"type": "Percent", "value": 100, "periodSeconds": 15},
                        ],
                    },
                    "scaleDown": {
                        "stabilizationWindowSeconds": 300,
                        "selectPolicy": "Max",
                        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                    },
                },
            },
            "derivation": dict(tg),
        }
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "capacity_source": cap.source,
        "slo_p99_ms": cap.slo_ms,
        "headroom": sizing.headroom,
        "note": "see docs/benchmarks.md#capacity--hpa--cost for the derivation",
        "services": services,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--openloop", type=Path, default=Path("loadtest/results/openloop.json"))
    p.add_argument("--slo-ms", type=float, default=50.0)
    p.add_argument("--bench-cpus", type=int, default=2)
    p.add_argument("--start-delay-s", type=int, default=30, help="pod created -> ready")
    p.add_argument("--node-delay-s", type=int, default=90, help="extra when a node must be added")
    p.add_argument("--max-replicas", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path("loadtest/results/hpa.json"))
    p.add_argument("--targets-out", type=Path, default=Path("loadtest/results/hpa_targets.json"))
    p.add_argument("--png", type=Path, help="default: --out with .png")
    args = p.parse_args(argv)

    sizing = Sizing()
    cap = capacity_from_openloop(
        json.loads(args.openloop.read_text()), args.slo_ms, args.bench_cpus
    )
    targets = derive_targets(cap, sizing)
    pipe = Pipeline()
    day = diurnal()
    scenarios = [
        run_scenario(
            "diurnal 84M/day",
            day,
            DAY_S,
            targets,
            cap,
            sizing,
            args.start_delay_s,
            pipe,
            args.max_replicas,
        ),
        run_scenario(
            "3x spike, warm nodes",
            spike(1000.0),
            5400,
            targets,
            cap,
            sizing,
            args.start_delay_s,
            pipe,
            args.max_replicas,
        ),
        run_scenario(
            "3x spike, node must be added",
            spike(1000.0),
            5400,
            targets,
            cap,
            sizing,
            args.start_delay_s + args.node_delay_s,
            pipe,
            args.max_replicas,
        ),
    ]
    peak = max(day(t) for t in range(0, DAY_S, 60))
    doc = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", "loadtest.hpa", *sys.argv[1:]]),
            "price": "m5.xlarge on-demand $0.192/h, us-east-1 (AWS price list as of 2025)",
        },
        "capacity": asdict(cap),
        "sizing": asdict(sizing),
        "targets": targets,
        "scenarios": scenarios,
        "static_peak": static_cost(peak, targets, sizing),
        "reference": {
            "nodes": 30,
            "monthly_cost_usd_quoted": 5500,
            "monthly_cost_usd_at_price": 30 * sizing.hours_per_month * sizing.price_per_node_hour,
            "qps": 1200,
            "p50_ms": 25,
            "p99_ms": 65,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    args.targets_out.write_text(
        json.dumps(helm_targets(targets, cap, sizing, args.max_replicas), indent=1) + "\n"
    )
    for sc in scenarios:
        cost = f"${sc['monthly_cost_usd']:,.0f}/month" if sc["monthly_cost_usd"] else "-"
        print(
            f"{sc['name']}: max replicas {sc['max_replicas']}, mean nodes {sc['mean_nodes']:.2f}, "
            f"{cost}, {sc['seconds_p99_over_slo']} s over SLO, "
            f"{sc['seconds_over_capacity']} s over capacity"
        )
    from loadtest import plots

    plots.plot_hpa(doc, args.png or args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
