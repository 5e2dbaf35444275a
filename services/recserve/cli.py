"""`recserve <command>`: one entry point for operators.

`recserve --help` lists the commands, `recserve --version` prints the installed version, and
`recserve COMMAND ...` hands the rest of the arguments to that command's own parser.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    subcommand: str | None  # prepended to the arguments the module's main() receives
    summary: str


_COMMANDS = {
    "train": Command(
        "recserve.training.__main__", "train", "train a model bundle (embeddings, index, ranker)"
    ),
    "publish": Command(
        "recserve.training.__main__",
        "publish",
        "load a bundle into Redis and make it the active version",
    ),
    "gc": Command(
        "recserve.training.__main__", "gc", "delete old bundle directories (and old Redis versions)"
    ),
    "synth": Command("recserve.training.__main__", "synth", "write a seeded synthetic data set"),
    "cluster": Command(
        "recserve.cluster.__main__", None, "status, rollout and training on Kubernetes"
    ),
    "client": Command(
        "recserve.client.__main__", None, "call the gateway: recommend, similar, record"
    ),
    "devstack": Command("recserve.devstack.__main__", None, "the local stack: up, down, status"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: it only picks the command (its arguments are parsed by the command)."""
    p = argparse.ArgumentParser(
        prog="recserve",
        description="Real-time item recommender: operator commands.",
        epilog="`recserve COMMAND --help` describes a command's arguments.",
    )
    p.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version('recserve')}"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in _COMMANDS.items():
        # add_help=False: `recserve train --help` reaches the command's own parser.
        sub.add_parser(name, help=cmd.summary, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # Only the first word is ours; argparse exits 0 on --help/--version, 2 on a bad command.
    command = _COMMANDS[build_parser().parse_args(args[:1]).command]
    rest = args[1:] if command.subcommand is None else [command.subcommand, *args[1:]]
    result = importlib.import_module(command.module).main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
