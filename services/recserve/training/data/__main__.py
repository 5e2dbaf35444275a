"""python -m recserve.training.data fetch-movielens --dest DIR (what `make bootstrap` runs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recserve.training.data.model import DataError
from recserve.training.data.wheel import fetch_movielens


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recserve.training.data")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser(
        "fetch-movielens", help="get MovieLens-100K (inside the recbole wheel) into DEST"
    )
    fetch.add_argument("--dest", default="data")
    args = parser.parse_args(argv)
    try:
        wheel = fetch_movielens(args.dest)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"MovieLens-100K: {wheel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
