"""The scenarios of docs/reliability.md. Each runs against a live `Cluster` under open-loop load
and returns a `ScenarioResult`: figures, a timeline of what was done when, and pass/fail checks."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos import stats
from chaos.cluster import Cluster, Replica
from chaos.load import LoadRun, LoadSpec, Record
from chaos.oracle import Oracle, verify_writes
from recserve.devstack.stack import SERVICES
from recserve.model import RedisLayout, active_version

BACKENDS = ("embedding_store", "candidates", "ranking")


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class ScenarioResult:
    name: str
    title: str
    command: str
    params: dict[str, Any]
    started_at: str
    duration_s: float
    machine: dict[str, Any]
    timeline: list[dict[str, Any]]
    load: dict[str, Any]
    figures: dict[str, Any]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out


def machine_info() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


@dataclass
class Harness:
    cluster: Cluster
    oracle: Oracle
    users: Sequence[str]
    items: Sequence[str]
    versions: Sequence[str]  # bundle versions: [serving at start, the one `publish` switches to]
    out_dir: Path
    rate: float = 40.0
    budget_s: float = 0.2
    slack_s: float = 0.1
    quick: bool = False
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%H%M%S"))

    def spec(self, name: str, **overrides: Any) -> LoadSpec:
        values: dict[str, Any] = {
            "target": self.cluster.target("gateway"),
            "rate": self.rate,
            "duration_s": 3600.0,  # stopped explicitly
            "users": list(self.users),
            "items": list(self.items),
            "write_prefix": f"chaos-{name}-{self.run_id}-",
        }
        values.update(overrides)
        return LoadSpec(**values)

    def pause(self, seconds: float) -> None:
        time.sleep(seconds / 3 if self.quick else seconds)


class Timeline:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.origin = time.time()

    def mark(self, event: str, **extra: Any) -> float:
        now = time.time()
        self.events.append({"t_s": round(now - self.origin, 3), "event": event, **extra})
        return now


def run_under_load(
    harness: Harness, name: str, actions: Callable[[Timeline], None], **spec: Any
) -> tuple[list[Record], Timeline]:
    load = LoadRun(harness.spec(name, **spec), harness.out_dir / "load" / name)
    timeline = Timeline()
    with load:
        timeline.origin = load.start_at
        harness.pause(3)  # warm-up, the baseline
        actions(timeline)
        harness.pause(3)  # after the last action
        timeline.mark("load stopped")
    return load.records, timeline


# Like Kubernetes' minReadySeconds: after a replica reports SERVING, wait longer than the
# clients' longest reconnect backoff (1 s, recserve.client.channel_options and the gateway's)
# before taking down the next one, so every client has it back in its rotation.
MIN_READY_S = 1.5


def wait_rejoined(
    cluster: Cluster, replica: Replica, before: float, timeout_s: float = 30.0
) -> float | None:
    """Seconds until the replica served an RPC again (client-side LB took it back), or None;
    then waits MIN_READY_S more."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if cluster.rpcs_served(replica) > before:
            elapsed = time.monotonic() - started
            time.sleep(MIN_READY_S)
            return elapsed
        time.sleep(0.05)
    return None


def no_internal(records: Sequence[Record]) -> Check:
    """INTERNAL means a bug: not in any answer, nor inside a fallback's reason."""
    bad = [r for r in records if "INTERNAL" in (r.code, r.first_code) or "INTERNAL" in r.detail]
    return Check(
        "no INTERNAL status anywhere (not even behind a fallback)",
        not bad,
        f"{len(bad)} {bad[0].detail if bad else ''}".strip(),
    )


def common_checks(
    harness: Harness, records: Sequence[Record], *, allow_degraded: bool
) -> tuple[dict[str, Any], list[Check], dict[str, Any], dict[str, Any]]:
    summary = stats.summarize(records, harness.budget_s, harness.slack_s)
    answers = harness.oracle.check(records)
    writes = verify_writes(harness.cluster.redis_client(), records)
    checks = [
        Check(
            "0 failed requests",
            summary["all"]["failed"] == 0,
            f"{summary['all']['failed']} of {summary['all']['sent']} failed "
            f"{summary['all']['failed_codes']}; first attempts failed: "
            f"{summary['all']['first_attempt_failed']} {summary['all']['first_attempt_codes']}",
        ),
        Check(
            "0 wrong answers (offline pipeline of the version named)",
            answers["wrong"] == 0,
            f"{answers['full_answers_checked']} full answers and {answers['fallbacks_checked']} "
            f"fallbacks checked, {answers['wrong']} wrong {answers['examples'][:1]}",
        ),
        Check(
            "0 acknowledged writes lost",
            writes["acknowledged_lost"] == 0,
            f"{writes['acknowledged']} acknowledged, {writes['acknowledged_lost']} lost",
        ),
        no_internal(records),
    ]
    if not allow_degraded:
        checks.append(
            Check(
                "0 degraded answers",
                summary["all"]["degraded"] == 0,
                f"{summary['all']['degraded']} degraded {summary['all']['degraded_reasons']}",
            )
        )
    return summary, checks, answers, writes


def _result(
    harness: Harness,
    name: str,
    title: str,
    started: float,
    timeline: Timeline,
    summary: dict[str, Any],
    figures: dict[str, Any],
    checks: list[Check],
    params: dict[str, Any] | None = None,
) -> ScenarioResult:
    return ScenarioResult(
        name=name,
        title=title,
        command=f".venv/bin/python -m chaos.run {name}",
        params={
            "rate_rps": harness.rate,
            "budget_ms": harness.budget_s * 1000,
            "slack_ms": harness.slack_s * 1000,
            "replicas_per_service": harness.cluster.replicas_per_service,
            "resolver": harness.cluster.resolver,
            "redis_appendfsync": harness.cluster.appendfsync,
            **(params or {}),
        },
        started_at=datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        duration_s=round(time.time() - started, 1),
        machine=machine_info(),
        timeline=timeline.events,
        load=summary,
        figures=figures,
        checks=checks,
    )


# --- 1. one replica of each backend killed, then restarted --------------------------------------


def kill_replicas(harness: Harness) -> ScenarioResult:
    """SIGKILL replica 0 of each backend (and of the gateway) in turn, restart it, wait until
    the client-side balancers use it again. The victim is frozen for 50 ms first, so calls are
    certainly in flight on it when it dies (a crash mid-request, not only between requests)."""
    cluster = harness.cluster
    started = time.time()
    figures: dict[str, Any] = {"replicas": {}}

    def actions(timeline: Timeline) -> None:
        for service in (*BACKENDS, "gateway"):
            victim = cluster.replicas[service][0]
            pid = cluster.pid(victim.name)
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.05)
            timeline.mark("SIGKILL", replica=victim.name)
            cluster.stop_replica(victim, signal.SIGKILL)
            harness.pause(2)
            timeline.mark("restart", replica=victim.name)
            ready_s = cluster.restart_replica(victim)
            timeline.mark("SERVING", replica=victim.name)
            rejoin_s = wait_rejoined(cluster, victim, 0.0)
            timeline.mark("back in rotation", replica=victim.name, after_s=rejoin_s)
            figures["replicas"][victim.name] = {
                "restart_to_serving_s": round(ready_s, 2),
                "serving_to_traffic_s": rejoin_s and round(rejoin_s, 2),
            }
            harness.pause(2)

    records, timeline = run_under_load(harness, "kill-replicas", actions)
    summary, checks, answers, writes = common_checks(harness, records, allow_degraded=False)
    checks.append(
        Check(
            "every killed replica back in rotation",
            all(v["serving_to_traffic_s"] is not None for v in figures["replicas"].values()),
            str(figures["replicas"]),
        )
    )
    figures.update(answers=answers, writes=writes)
    return _result(
        harness,
        "kill-replicas",
        "SIGKILL one replica of each service in turn, then restart",
        started,
        timeline,
        summary,
        figures,
        checks,
    )


# --- 2. Redis stalled ----------------------------------------------------------------------------


def redis_stall(harness: Harness, stall_s: float = 5.0) -> ScenarioResult:
    cluster = harness.cluster
    started = time.time()
    window: dict[str, float] = {}

    def stall(timeline: Timeline) -> None:
        pid = cluster.pid("redis")
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        window["stop"] = timeline.mark("SIGSTOP redis")
        time.sleep(stall_s)
        os.kill(pid, signal.SIGCONT)
        window["cont"] = timeline.mark("SIGCONT redis")
        harness.pause(3)

    records, timeline = run_under_load(harness, "redis-stall", stall)
    summary, checks, answers, writes = common_checks(harness, records, allow_degraded=True)
    # Writes cannot succeed while Redis is stopped: they are answered UNAVAILABLE ("not
    # stored, retry") and counted apart; the "0 failed" check is about reads.
    checks[0] = Check(
        "0 failed reads",
        summary["reads"]["failed"] == 0,
        f"{summary['reads']['failed']} of {summary['reads']['sent']} reads failed "
        f"{summary['reads']['failed_codes']}",
    )
    reads = [r for r in records if r.op in stats.READS]
    limit = harness.budget_s + harness.slack_s
    late = [r for r in reads if r.latency > limit]
    checks.append(
        Check(
            f"every read answered within budget + slack ({limit * 1000:.0f} ms, client-observed)",
            not late,
            f"{len(late)} later; reads p99 {summary['reads']['latency_ms']['p99']} ms, "
            f"max {summary['reads']['latency_ms']['max']} ms",
        )
    )
    # Requests that start while Redis is stopped need user state: all must be flagged.
    during = [
        r
        for r in records
        if r.op == "recommend" and window["stop"] + 0.05 <= r.t < window["cont"] - 0.25
    ]
    flagged = [r for r in during if r.degraded == "embedding_store_unavailable"]
    checks.append(
        Check(
            "Recommend flagged degraded while Redis was stopped",
            bool(during) and len(flagged) == len(during),
            f"{len(flagged)} of {len(during)} flagged embedding_store_unavailable",
        )
    )
    after = [r for r in records if r.op == "recommend" and r.t >= window["cont"] and r.degraded]
    recovery_s = max((r.t for r in after), default=window["cont"]) - window["cont"]
    tail = [
        r for r in records if r.op == "recommend" and r.t >= window["cont"] + recovery_s + 0.001
    ]
    checks.append(
        Check(
            "full service resumes by itself",
            bool(tail) and not any(r.degraded for r in tail) and recovery_s < 5,
            f"last degraded answer {recovery_s:.2f} s after SIGCONT; {len(tail)} full answers after",
        )
    )
    writes_during = [
        r for r in records if r.op == "record" and window["stop"] <= r.t < window["cont"]
    ]
    figures = {
        "stall_s": stall_s,
        "recommend_during_stall": len(during),
        "recommend_flagged_during_stall": len(flagged),
        "recovery_s": round(recovery_s, 2),
        "writes_during_stall": len(writes_during),
        "writes_during_stall_not_acknowledged": sum(1 for r in writes_during if r.code != "OK"),
        "answers": answers,
        "writes": writes,
    }
    return _result(
        harness,
        "redis-stall",
        f"Redis stopped (SIGSTOP) for {stall_s:.0f} s, then resumed",
        started,
        timeline,
        summary,
        figures,
        checks,
    )


# --- 3. Redis killed and restarted --------------------------------------------------------------


def _vectors_present(cluster: Cluster, version: str, items: Sequence[str]) -> int:
    layout = RedisLayout()
    values = cluster.redis_client().mget([layout.vector_key(version, i) for i in items])
    return sum(1 for v in values if v is not None)


def redis_kill(harness: Harness, down_s: float = 1.0) -> ScenarioResult:
    cluster = harness.cluster
    started = time.time()
    before_version = active_version(cluster.redis_client())
    window: dict[str, float] = {}

    def actions(timeline: Timeline) -> None:
        window["kill"] = timeline.mark("SIGKILL redis")
        cluster.stack.stop_process("redis", signal.SIGKILL)
        time.sleep(down_s)
        timeline.mark("restart redis (replays its AOF)")
        cluster.stack.start_redis()
        window["up"] = timeline.mark("redis answers PING")
        harness.pause(3)

    records, timeline = run_under_load(harness, "redis-kill", actions)
    summary, checks, answers, writes = common_checks(harness, records, allow_degraded=True)
    checks[0] = Check(
        "0 failed reads",
        summary["reads"]["failed"] == 0,
        f"{summary['reads']['failed']} of {summary['reads']['sent']} reads failed "
        f"{summary['reads']['failed_codes']}",
    )
    after_version = active_version(cluster.redis_client())
    present = _vectors_present(cluster, after_version or "", harness.items)
    checks.append(
        Check(
            "active model survives",
            after_version == before_version and present == len(harness.items),
            f"active {before_version} -> {after_version}; {present}/{len(harness.items)} vectors",
        )
    )
    after = [r for r in records if r.op == "recommend" and r.t >= window["up"] and r.degraded]
    recovery_s = max((r.t for r in after), default=window["up"]) - window["up"]
    checks.append(
        Check(
            "full service resumes by itself",
            recovery_s < 5,
            f"last degraded answer {recovery_s:.2f} s after Redis answered again",
        )
    )
    outage = [r for r in records if window["kill"] <= r.t < window["up"]]
    figures = {
        "down_s": down_s,
        "outage_s": round(window["up"] - window["kill"], 2),
        "requests_during_outage": len(outage),
        "writes_during_outage_not_acknowledged": sum(
            1 for r in outage if r.op == "record" and r.code != "OK"
        ),
        "recovery_s": round(recovery_s, 2),
        "active_version": after_version,
        "answers": answers,
        "writes": writes,
    }
    return _result(
        harness,
        "redis-kill",
        "Redis SIGKILLed and restarted (AOF persistence)",
        started,
        timeline,
        summary,
        figures,
        checks,
    )


def aof_cost(harness: Harness, seconds: float = 8.0) -> ScenarioResult:
    """RecordEvents latency with appendfsync always (nothing acknowledged is lost) against
    everysec (up to ~1-2 s of acknowledged writes lost if the machine crashes)."""
    cluster = harness.cluster
    started = time.time()
    client = cluster.redis_client()
    figures: dict[str, Any] = {}
    timeline = Timeline()
    raw = client.config_get("appendfsync")["appendfsync"]
    original = raw.decode() if isinstance(raw, bytes) else str(raw)
    all_records: list[Record] = []
    try:
        for policy in ("always", "everysec"):
            client.config_set("appendfsync", policy)
            spec = harness.spec(
                f"aof-{policy}",
                recommend_share=0.5,
                record_share=0.5,
                duration_s=seconds / 3 if harness.quick else seconds,
            )
            load = LoadRun(spec, harness.out_dir / "load" / f"aof-{policy}")
            load.start()
            records = load.join()
            timeline.mark(f"appendfsync {policy}: {len(records)} requests")
            writes = [r for r in records if r.op == "record" and r.code == "OK"]
            figures[policy] = {
                "writes": len(writes),
                "write_latency_ms": stats.percentiles_ms([r.latency for r in writes]),
            }
            all_records.extend(records)
    finally:
        client.config_set("appendfsync", original)
    summary = stats.summarize(all_records, harness.budget_s, harness.slack_s)
    checks = [
        Check(
            "0 failed requests", summary["all"]["failed"] == 0, str(summary["all"]["failed_codes"])
        ),
        no_internal(all_records),
    ]
    return _result(
        harness,
        "aof-cost",
        "Cost of appendfsync always vs everysec (RecordEvents latency)",
        started,
        timeline,
        summary,
        figures,
        checks,
    )


# --- 4. rolling restart ----------------------------------------------------------------------------


def rolling_restart(harness: Harness) -> ScenarioResult:
    """SIGTERM every replica of every service in turn (graceful: NOT_SERVING, drain, exit), start
    it again, and move on once the balancers send it traffic again (Kubernetes'
    maxUnavailable 1 with a readiness gate)."""
    cluster = harness.cluster
    started = time.time()
    figures: dict[str, Any] = {"replicas": {}}

    def actions(timeline: Timeline) -> None:
        for service in SERVICES:
            for replica in cluster.replicas[service]:
                timeline.mark("SIGTERM", replica=replica.name)
                stop_started = time.monotonic()
                cluster.stop_replica(replica, signal.SIGTERM)
                exit_s = time.monotonic() - stop_started
                timeline.mark("exited", replica=replica.name, after_s=round(exit_s, 2))
                ready_s = cluster.restart_replica(replica)
                timeline.mark("SERVING", replica=replica.name)
                rejoin_s = wait_rejoined(cluster, replica, 0.0)
                timeline.mark("back in rotation", replica=replica.name, after_s=rejoin_s)
                figures["replicas"][replica.name] = {
                    "drain_and_exit_s": round(exit_s, 2),
                    "restart_to_serving_s": round(ready_s, 2),
                    "serving_to_traffic_s": rejoin_s and round(rejoin_s, 2),
                }

    records, timeline = run_under_load(harness, "rolling-restart", actions)
    summary, checks, answers, writes = common_checks(harness, records, allow_degraded=False)
    checks.append(
        Check(
            "every replica back in rotation",
            all(v["serving_to_traffic_s"] is not None for v in figures["replicas"].values()),
            str({k: v["serving_to_traffic_s"] for k, v in figures["replicas"].items()}),
        )
    )
    figures.update(answers=answers, writes=writes)
    return _result(
        harness,
        "rolling-restart",
        "Rolling restart of every replica of every service",
        started,
        timeline,
        summary,
        figures,
        checks,
    )


# --- 5. publish a new model --------------------------------------------------------------------


def _serving_version(cluster: Cluster, replica: Replica) -> set[str]:
    try:
        samples = cluster.metrics(replica)
    except OSError:
        return set()
    return {
        key.split('version="', 1)[1].split('"', 1)[0]
        for key, value in samples.items()
        if key.startswith("recserve_model_info{") and value == 1
    }


def publish(harness: Harness) -> ScenarioResult:
    cluster = harness.cluster
    old, new = harness.versions[0], harness.versions[1]
    started = time.time()
    window: dict[str, float] = {}

    def actions(timeline: Timeline) -> None:
        timeline.mark("publish", version=new)
        cluster.stack.publish(new)
        window["published"] = timeline.mark("active pointer flipped")
        deadline = time.monotonic() + 60
        pending = [r for r in cluster.all_replicas() if r.service != "embedding_store"]
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if new not in _serving_version(cluster, r)]
            time.sleep(0.05)
        window["switched"] = timeline.mark(
            "every gateway, candidates, ranking replica on the new version",
            missing=[r.name for r in pending],
        )

    records, timeline = run_under_load(harness, "publish", actions)
    summary, checks, answers, writes = common_checks(harness, records, allow_degraded=False)
    versions = {r.version for r in records if r.code == "OK" and r.op != "record"}
    stale = [
        r
        for r in records
        if r.op != "record"
        and r.code == "OK"
        and r.t > window["switched"] + 0.5
        and r.version != new
    ]
    checks.append(
        Check("only the two versions served", versions <= {old, new}, str(sorted(versions)))
    )
    checks.append(
        Check(
            "old version no longer served once every replica switched",
            not stale,
            f"{len(stale)} answers on {old} scheduled > 0.5 s after the switch completed",
        )
    )
    switch_s = window["switched"] - window["published"]
    figures = {
        "old": old,
        "new": new,
        "switch_s": round(switch_s, 2),
        "answers_by_version": answers["versions"],
        "answers": answers,
        "writes": writes,
    }
    return _result(
        harness,
        "publish",
        "Publish a new model version under load",
        started,
        timeline,
        summary,
        figures,
        checks,
    )


# --- 6. overload -----------------------------------------------------------------------------------


def _gateway_histogram(cluster: Cluster, code: str) -> dict[float, float]:
    parts = []
    for replica in cluster.replicas["gateway"]:
        samples = cluster.metrics(replica)
        parts.append(
            stats.histogram_buckets(
                samples,
                "recserve_rpc_duration_seconds",
                {
                    "grpc_service": "recserve.v1.RecommenderService",
                    "grpc_method": "Recommend",
                    "grpc_code": code,
                },
            )
        )
    return stats.merge_buckets(parts)


def _quantiles_ms(buckets: dict[float, float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {"count": buckets.get(float("inf"), 0.0)}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        value = stats.histogram_quantile(buckets, q)
        out[name] = None if value is None else round(value * 1000, 1)
    return out


GENERATOR_LAG_LIMIT_MS = 50.0


def find_shedding_rate(
    harness: Harness, probe_s: float = 2.0, factor: float = 2.0, max_doublings: int = 8
) -> tuple[float | None, list[dict[str, Any]]]:
    """The lowest rate of a geometric ladder (from 2x the steady rate) at which the stack sheds,
    or None when the generator ran out of breath first (its send lag past the limit): the
    stack's capacity here, on whatever else this machine runs at the moment."""
    probes: list[dict[str, Any]] = []
    rate = harness.rate
    for n in range(max_doublings):
        rate *= factor
        spec = harness.spec(
            f"calibrate{n}",
            timeout_s=harness.budget_s + harness.slack_s,
            rate=rate,
            duration_s=probe_s,
            attempts=1,
            workers=2 if rate > 150 else 1,
            channels_per_worker=4,
        )
        records = LoadRun(spec, harness.out_dir / "load" / f"calibrate{n}").start().join()
        shed = sum(1 for r in records if r.code in ("RESOURCE_EXHAUSTED", "UNAVAILABLE"))
        lag = stats.percentiles_ms([r.send_lag for r in records])["p99"] or 0.0
        probes.append({"offered_rps": rate, "sent": len(records), "shed": shed, "lag_p99_ms": lag})
        harness.pause(1)
        if shed:
            return rate, probes
        if lag > GENERATOR_LAG_LIMIT_MS:
            break
    return None, probes


def overload(
    harness: Harness, multiples: Sequence[float] = (2, 5), step_s: float = 8.0
) -> ScenarioResult:
    """Finds the rate at which the stack starts shedding on this machine now, then open-loop
    steps: steady rate, `multiples` x that rate, steady again. A fixed rate would overload a
    loaded machine and not a quiet one. No client retries (a retry storm is what a retry budget
    prevents, not what this measures)."""
    cluster = harness.cluster
    started = time.time()
    timeline = Timeline()
    steps: list[dict[str, Any]] = []
    all_records: list[Record] = []
    gateways = [r.name for r in cluster.replicas["gateway"]]
    baseline_rss = {name: cluster.rss_bytes(name) for name in gateways}
    timeline.mark("calibrating: geometric ladder until the stack sheds")
    shedding_rate, probes = find_shedding_rate(harness)
    timeline.mark(f"sheds from {shedding_rate} req/s")
    rates = [harness.rate]
    if shedding_rate is not None:
        rates += [shedding_rate * m for m in multiples]
    rates.append(harness.rate)
    for n, rate in enumerate(rates):
        spec = harness.spec(
            f"overload{n}",
            # A caller whose deadline is the budget plus slack: a request queued past it comes
            # back DEADLINE_EXCEEDED instead of hiding in a long tail.
            timeout_s=harness.budget_s + harness.slack_s,
            rate=rate,
            duration_s=step_s / 3 if harness.quick else step_s,
            attempts=1,
            workers=2 if rate > 150 else 1,
            channels_per_worker=4,
        )
        before = {code: _gateway_histogram(cluster, code) for code in ("OK", "RESOURCE_EXHAUSTED")}
        peak_rss = dict(baseline_rss)
        stop = threading.Event()

        def sample(peak: dict[str, int] = peak_rss, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                for name in gateways:
                    peak[name] = max(peak[name], cluster.rss_bytes(name))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timeline.mark(f"step {n}: {rate:.0f} req/s")
        load = LoadRun(spec, harness.out_dir / "load" / f"overload{n}").start()
        records = load.join()
        stop.set()
        sampler.join()
        server = {
            code: _quantiles_ms(
                stats.histogram_delta(_gateway_histogram(cluster, code), before[code])
            )
            for code in before
        }
        shed = [r for r in records if r.code in ("RESOURCE_EXHAUSTED", "UNAVAILABLE")]
        ok = [r for r in records if r.code == "OK"]
        steps.append(
            {
                "offered_rps": rate,
                "sent": len(records),
                "ok": len(ok),
                "ok_rps": round(len(ok) / spec.duration_s, 1),
                "degraded": sum(1 for r in ok if r.degraded),
                "shed": len(shed),
                "shed_codes": dict(Counter(r.code for r in shed)),
                "deadline_exceeded": sum(1 for r in records if r.code == "DEADLINE_EXCEEDED"),
                "other_errors": sum(
                    1
                    for r in records
                    if r.code
                    not in ("OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED")
                ),
                "ok_latency_ms": stats.percentiles_ms([r.latency for r in ok]),
                "shed_latency_ms": stats.percentiles_ms([r.latency for r in shed]),
                "send_lag_ms": stats.percentiles_ms([r.send_lag for r in records]),
                "server_ok_ms": server["OK"],
                "server_shed_ms": server["RESOURCE_EXHAUSTED"],
                "gateway_rss_mb": {k: round(v / 2**20, 1) for k, v in peak_rss.items()},
                "load_average": machine_info()["load_average"],
            }
        )
        all_records.extend(records)
        harness.pause(2)
    summary = stats.summarize(all_records, harness.budget_s, harness.slack_s)
    checks: list[Check] = []
    over = [s for s in steps if s["offered_rps"] > harness.rate]
    # Client-side latency means something only where the generator kept its schedule (it
    # shares the two cores with the stack): judged on steps with send lag p99 <= 50 ms.
    kept = [s for s in steps if (s["send_lag_ms"]["p99"] or 0) <= GENERATOR_LAG_LIMIT_MS]
    limit_ms = (harness.budget_s + harness.slack_s) * 1000
    last = steps[-1]
    checks.append(
        Check(
            "found the capacity (a rate where the stack sheds before the generator's lag limit)",
            shedding_rate is not None,
            f"sheds from {shedding_rate} req/s; probes {probes}",
        )
    )
    checks.append(
        Check(
            "sheds beyond capacity",
            bool(over) and all(s["shed"] > 0 for s in over),
            str([(s["offered_rps"], s["shed"]) for s in over]),
        )
    )
    checks.append(
        Check(
            "shedding is fast (gateway-side p99 < 25 ms; client-side p50 < 50 ms where the "
            "generator kept up)",
            all((s["server_shed_ms"]["p99"] or 0) < 25 for s in over)
            and all((s["shed_latency_ms"]["p50"] or 0) < 50 for s in over if s in kept),
            str(
                [
                    (s["offered_rps"], s["server_shed_ms"]["p99"], s["shed_latency_ms"]["p50"])
                    for s in over
                ]
            ),
        )
    )
    checks.append(
        Check(
            f"accepted requests keep the budget (p99 <= {limit_ms:.0f} ms gateway-side; "
            "client-side where the generator kept up)",
            all((s["server_ok_ms"]["p99"] or 0) <= limit_ms for s in steps)
            and all((s["ok_latency_ms"]["p99"] or 0) <= limit_ms for s in kept),
            str(
                [
                    (
                        s["offered_rps"],
                        s["server_ok_ms"]["p99"],
                        s["ok_latency_ms"]["p99"],
                        s in kept,
                    )
                    for s in steps
                ]
            ),
        )
    )
    checks.append(
        Check(
            "nothing queued past the caller's deadline (0 DEADLINE_EXCEEDED where the generator "
            "kept up)",
            all(s["deadline_exceeded"] == 0 for s in kept),
            str([(s["offered_rps"], s["deadline_exceeded"]) for s in steps]),
        )
    )
    checks.append(no_internal(all_records))
    growth = (
        max(max(s["gateway_rss_mb"].values()) for s in steps) - max(baseline_rss.values()) / 2**20
    )
    checks.append(
        Check("memory bounded (gateway RSS grows < 100 MB)", growth < 100, f"+{growth:.1f} MB")
    )
    checks.append(
        Check(
            "recovers: 0 errors at the steady rate afterwards",
            last["sent"] == last["ok"],
            f"{last['sent'] - last['ok']} errors at {last['offered_rps']} req/s",
        )
    )
    figures = {
        "shedding_rate_rps": shedding_rate,
        "calibration": probes,
        "steps": steps,
        "gateway_rss_baseline_mb": {k: round(v / 2**20, 1) for k, v in baseline_rss.items()},
    }
    return _result(
        harness,
        "overload",
        "Open-loop overload: find where the stack sheds, then steady rate, "
        + ", ".join(f"{m:g}x that" for m in multiples)
        + ", back to steady",
        started,
        timeline,
        summary,
        figures,
        checks,
        params={"multiples": list(multiples), "step_s": step_s},
    )


SCENARIOS: dict[str, Callable[[Harness], ScenarioResult]] = {
    "kill-replicas": kill_replicas,
    "rolling-restart": rolling_restart,
    "redis-stall": redis_stall,
    "redis-kill": redis_kill,
    "aof-cost": aof_cost,
    "publish": publish,
    "overload": overload,
}
