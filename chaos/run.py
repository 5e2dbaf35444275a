"""Run the chaos scenarios against real processes on loopback and write JSON results.

    .venv/bin/python -m chaos.run                      # every scenario (make chaos)
    .venv/bin/python -m chaos.run redis-stall publish  # some
    .venv/bin/python -m chaos.run --quick              # shorter pauses (smoke test)

Trains two small synthetic bundles the first time (kept under --work), starts Redis
(AOF, appendfsync always), dnsmasq and two replicas of every service, runs the scenarios in
order on that one cluster, writes `<out>/<scenario>.json` and `<out>/summary.md`, and exits 1
if any check failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.bundles import read_catalog, train_versions
from chaos.cluster import Cluster
from chaos.oracle import Oracle
from chaos.scenarios import SCENARIOS, Harness, ScenarioResult, machine_info
from recserve.devstack.stack import SERVICES


def summary_markdown(results: list[ScenarioResult]) -> str:
    lines = [
        "| scenario | requests | failed (first attempt) | degraded | wrong answers | acknowledged writes lost | checks |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        load = r.load["all"]
        answers = r.figures.get("answers", {})
        writes = r.figures.get("writes", {})
        lines.append(
            f"| {r.name} | {load['sent']} | {load['failed']} ({load['first_attempt_failed']}) "
            f"| {load['degraded']} | {answers.get('wrong', '-')} "
            f"| {writes.get('acknowledged_lost', '-')} of {writes.get('acknowledged', '-')} "
            f"| {'pass' if r.passed else 'FAIL'} |"
        )
    for r in results:
        lines.append(f"\n### {r.name}: {r.title} — {'pass' if r.passed else 'FAIL'}\n")
        lines.extend(f"- [{'x' if c.passed else ' '}] {c.name}: {c.detail}" for c in r.checks)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--out", default="chaos/results", help="where the JSON results go")
    parser.add_argument("--work", default="run/chaos", help="bundles, logs, Redis data")
    parser.add_argument("--rate", type=float, default=40.0, help="steady load, requests/s")
    parser.add_argument("--replicas", type=int, default=2, help="replicas of every service")
    parser.add_argument("--quick", action="store_true", help="shorter pauses and steps")
    parser.add_argument(
        "--keep", action="store_true", help="keep every request's record (<work>/cluster/load/)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="RECSERVE_X=V",
        help="extra setting for every service (repeatable), e.g. RECSERVE_MAX_IN_FLIGHT_REQUESTS=64",
    )
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    print(f"chaos: bundles in {work / 'bundles'} (trained when missing)", flush=True)
    versions = train_versions(work / "bundles", 2)[-2:]
    cluster_dir = work / "cluster"
    shutil.rmtree(cluster_dir, ignore_errors=True)
    cluster = Cluster(
        cluster_dir,
        work / "bundles",
        replicas_per_service=args.replicas,
        env={
            "RECSERVE_LOG_LEVEL": "INFO",
            "RECSERVE_MODEL_POLL_INTERVAL_S": "0.5",
            "RECSERVE_SHUTDOWN_GRACE_S": "5",
            # capacity x target latency for this box: ~150 req/s per gateway x ~100 ms.
            "RECSERVE_MAX_IN_FLIGHT_REQUESTS": "16",
            **dict(kv.split("=", 1) for kv in args.env),
        },
    )
    print(
        f"chaos: starting redis, dnsmasq ({cluster.resolver}) and {args.replicas} replicas of "
        f"{', '.join(SERVICES)} on 127.0.0.2-{1 + args.replicas}",
        flush=True,
    )
    results: list[ScenarioResult] = []
    started = time.time()
    cluster.start(versions[0])
    try:
        users, items = read_catalog(work / "bundles" / versions[0])
        oracle = Oracle({v: work / "bundles" / v for v in versions}, cluster.redis_client(), users)
        harness = Harness(
            cluster, oracle, users, items, versions, cluster_dir, rate=args.rate, quick=args.quick
        )
        for name in names:
            print(f"chaos: {name} ...", flush=True)
            result = SCENARIOS[name](harness)
            results.append(result)
            (out / f"{name}.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
            load = result.load["all"]
            print(
                f"chaos: {name}: {'pass' if result.passed else 'FAIL'} — {load['sent']} requests, "
                f"{load['failed']} failed, {load['degraded']} degraded",
                flush=True,
            )
            for check in result.checks:
                print(
                    f"    [{'x' if check.passed else ' '}] {check.name}: {check.detail}", flush=True
                )
            dead = [r.name for r in cluster.all_replicas() if not cluster.alive(r.name)]
            if dead or not cluster.alive("redis"):
                raise RuntimeError(f"processes died outside the scenario: {dead}")
    finally:
        cluster.down()
        if not args.keep:
            shutil.rmtree(cluster_dir / "load", ignore_errors=True)
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m chaos.run", *(argv if argv is not None else sys.argv[1:])]),
        "duration_s": round(time.time() - started, 1),
        "machine": machine_info(),
        "passed": all(r.passed for r in results),
    }
    (out / "summary.md").write_text(
        f"Run {meta['date']}, {meta['duration_s']} s, load average at end "
        f"{meta['machine']['load_average']} on {meta['machine']['cpus']} CPUs.\n\n"
        + summary_markdown(results)
    )
    (out / "summary.json").write_text(
        json.dumps({**meta, "scenarios": {r.name: r.passed for r in results}}, indent=1) + "\n"
    )
    print(
        f"chaos: {'all passed' if meta['passed'] else 'FAILED'} in {meta['duration_s']} s; results in {out}/"
    )
    return 0 if meta["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
