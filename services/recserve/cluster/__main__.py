"""`recserve cluster` command line (also `python -m recserve.cluster`).

    recserve cluster status  [-n NS] [--release R] [-o text|json]
    recserve cluster rollout --version V [-n NS] [--release R] [--wait] [--timeout S]
    recserve cluster train   [-n NS] [--release R] [--wait] [--timeout S]

Credentials: the current kubeconfig context (``--context`` to pick one), or the in-cluster
service account with ``--in-cluster``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from kubernetes import client, config

from recserve.cluster.ops import (
    DEFAULT_GRPC_PORT,
    ClusterApis,
    RolloutError,
    format_status,
    release_status,
    rollout,
    train,
    wait_for_job,
    wait_for_version,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recserve cluster", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default="recserve")
    common.add_argument("--release", default="recserve", help="Helm release name")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    common.add_argument(
        "--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="pods' gRPC port (GetModelInfo)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    st = sub.add_parser("status", parents=[common], help="replicas, HPA, model version per pod")
    st.add_argument("-o", "--output", choices=["text", "json"], default="text")
    st.add_argument(
        "--no-model-info",
        action="store_true",
        help="skip asking each pod GetModelInfo through a port-forward",
    )

    ro = sub.add_parser("rollout", parents=[common], help="make model version V active")
    ro.add_argument("--version", required=True, help="bundle version on the bundle volume")
    ro.add_argument("--wait", action="store_true", help="wait for the Job and for every pod")
    ro.add_argument("--timeout", type=float, default=600.0, help="seconds, per wait")

    tr = sub.add_parser("train", parents=[common], help="train and publish a new version now")
    tr.add_argument("--wait", action="store_true", help="wait for the Job")
    tr.add_argument("--timeout", type=float, default=7200.0)
    return p


def connect(args: argparse.Namespace) -> ClusterApis:
    if args.in_cluster:
        config.load_incluster_config()
    else:
        config.load_kube_config(context=args.context)
    return ClusterApis.from_api_client(client.ApiClient())


def main(
    argv: Sequence[str] | None = None,
    *,
    apis_factory: Callable[[argparse.Namespace], ClusterApis] = connect,
) -> int:
    args = build_parser().parse_args(argv)
    apis = apis_factory(args)
    ns, release = args.namespace, args.release
    try:
        if args.command == "status":
            status = release_status(
                apis,
                ns,
                release,
                grpc_port=args.grpc_port,
                read_model_info=not args.no_model_info,
            )
            if args.output == "json":
                print(json.dumps(status.as_dict(), indent=2))
            else:
                print(format_status(status))
            return 0
        if args.command == "rollout":
            job = rollout(apis, ns, release, args.version)
            print(f"rollout of {args.version}: job {job.metadata.name} created")
            if args.wait:
                wait_for_job(apis, ns, job.metadata.name, timeout_s=args.timeout)
                print(f"job {job.metadata.name} complete; waiting for pods to load {args.version}")
                status = wait_for_version(
                    apis,
                    ns,
                    release,
                    args.version,
                    timeout_s=args.timeout,
                    grpc_port=args.grpc_port,
                )
                print(format_status(status))
            return 0
        if args.command == "train":
            job = train(apis, ns, release)
            print(f"training job {job.metadata.name} created")
            if args.wait:
                wait_for_job(apis, ns, job.metadata.name, timeout_s=args.timeout)
                print(f"job {job.metadata.name} complete")
            return 0
    except RolloutError as e:
        print(f"recserve cluster: {e}", file=sys.stderr)
        return 1
    except client.exceptions.ApiException as e:
        print(f"recserve cluster: Kubernetes API error {e.status} {e.reason}", file=sys.stderr)
        return 2
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    raise SystemExit(main())
