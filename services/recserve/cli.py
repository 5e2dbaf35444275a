"""`recserve <command>`: one entry point for operators."""

from __future__ import annotations

import importlib
import sys

_COMMANDS = {
    "train": ("recserve.training.__main__", "train"),
    "publish": ("recserve.training.__main__", "publish"),
    "gc": ("recserve.training.__main__", "gc"),
    "synth": ("recserve.training.__main__", "synth"),
    "cluster": ("recserve.cluster.__main__", None),
    "client": ("recserve.client.__main__", None),
    "devstack": ("recserve.devstack.__main__", None),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in _COMMANDS:
        print(f"usage: recserve {{{','.join(_COMMANDS)}}} ...", file=sys.stderr)
        return 2
    module_name, subcommand = _COMMANDS[args[0]]
    rest = args[1:] if subcommand is None else [subcommand, *args[1:]]
    result = importlib.import_module(module_name).main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
