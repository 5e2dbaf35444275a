"""`python -m recserve.client recommend --target HOST:PORT --user-id 1` (also the helm test).

The target defaults to $RECSERVE_TARGET, else the local stack's 127.0.0.1:50051.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from recserve.client.client import RecommenderClient
from recserve.client.errors import RecommenderError
from recserve.client.options import TARGET_ENV


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recserve client")
    parser.add_argument("command", choices=["recommend", "similar", "record"])
    parser.add_argument("--target", default=os.environ.get(TARGET_ENV, "127.0.0.1:50051"))
    parser.add_argument("--user-id", default="")
    parser.add_argument("--item-id", action="append", default=[], help="recent/record/similar item")
    parser.add_argument("-k", "--k", type=int, default=10)
    parser.add_argument("--token", default=os.environ.get("RECSERVE_AUTH_TOKEN"))
    parser.add_argument("--tls", action="store_true", help="TLS with the system CA roots")
    parser.add_argument("--tls-ca-file", default=None)
    parser.add_argument("--tls-cert-file", default=None, help="client certificate (mTLS)")
    parser.add_argument("--tls-key-file", default=None)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    if args.command == "similar" and len(args.item_id) != 1:
        parser.error("similar needs exactly one --item-id")
    with RecommenderClient(
        args.target,
        token=args.token,
        tls=args.tls,
        tls_ca_file=args.tls_ca_file,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_key_file,
        timeout_s=args.timeout,
    ) as client:
        try:
            if args.wait:
                client.wait_ready(args.wait)
            if args.command == "recommend":
                result: object = client.recommend(
                    args.user_id, recent_item_ids=args.item_id, k=args.k
                )
            elif args.command == "similar":
                result = client.similar_items(args.item_id[0], k=args.k)
            else:
                result = client.record_events(args.user_id, args.item_id)
        except (RecommenderError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(asdict(result), indent=2))  # type: ignore[call-overload]
    return 0


if __name__ == "__main__":
    sys.exit(main())
