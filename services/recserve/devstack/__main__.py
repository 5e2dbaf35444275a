"""`make up` / `make down`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recserve.client import RecommenderClient
from recserve.devstack.stack import Stack, StackPorts, free_port
from recserve.devstack.titles import item_titles


def _show_examples(stack: Stack) -> None:
    titles = item_titles()
    gateway = stack.address("gateway")
    with RecommenderClient(gateway) as client:
        for user_id in ("1", "42", "196"):
            result = client.recommend(user_id, k=5)
            flag = f" (degraded: {result.degraded_reason})" if result.degraded else ""
            print(f"\nTop 5 for user {user_id} — model {result.model_version}{flag}")
            for item in result.items:
                print(f"  {item.score:6.3f}  {titles.get(item.item_id, item.item_id)}")
    print(
        f"""
Gateway: {gateway}   metrics: http://127.0.0.1:{stack.ports.metrics["gateway"]}/metrics
  grpcurl -plaintext -d '{{"user_id": "1", "k": 5}}' {gateway} recserve.v1.RecommenderService/Recommend
  .venv/bin/python -m recserve.client recommend --target {gateway} --user-id 1 -k 5
  python: from recserve.client import RecommenderClient; RecommenderClient("{gateway}").recommend("1", k=5)
Logs: {stack.run_dir}/logs/   stop with: make down"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recserve.devstack")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", default="run")
    parser.add_argument("--bundles", default="bundles")
    defaults = StackPorts()
    for name in ("redis", "gateway", "embedding_store", "candidates", "ranking"):
        parser.add_argument(
            f"--{name.replace('_', '-')}-port", type=int, default=getattr(defaults, name)
        )
    parser.add_argument(
        "--metrics-base-port",
        type=int,
        default=9464,
        help="metrics ports are base..base+3 (gateway, embedding_store, candidates, ranking); 0 = free ports",
    )
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if args.command == "down":
        if (run_dir / "stack.json").exists() or (run_dir / "pids").exists():
            Stack(run_dir, args.bundles).down()
        print("stopped")
        return 0
    ports = StackPorts(
        redis=args.redis_port,
        gateway=args.gateway_port,
        embedding_store=args.embedding_store_port,
        candidates=args.candidates_port,
        ranking=args.ranking_port,
        metrics={
            name: (args.metrics_base_port + offset if args.metrics_base_port else free_port())
            for offset, name in enumerate(("gateway", "embedding_store", "candidates", "ranking"))
        },
    )
    stack = Stack(run_dir, args.bundles, ports)
    if args.command == "status":
        print(stack.info())
        return 0
    stack.down()  # a previous `make up` in the same run dir
    try:
        stack.up()
    except Exception as exc:
        print(f"make up failed: {exc}\nlogs: {run_dir}/logs/", file=sys.stderr)
        stack.down()
        return 1
    _show_examples(stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
