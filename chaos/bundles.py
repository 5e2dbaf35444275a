"""Small trained catalogs for the chaos runs and the chaos/security tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# The integration tests' catalog (tests/integration/conftest.py): trains in ~15 s.
TRAIN_ARGS = [
    "--format",
    "synthetic",
    "--synthetic-items",
    "400",
    "--synthetic-users",
    "300",
    "--synthetic-events",
    "20000",
    "--seed",
    "7",
]


def versions_in(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").exists())


def train_versions(root: Path, count: int) -> list[str]:
    """At least `count` bundle versions under root (the second with fewer epochs)."""
    root.mkdir(parents=True, exist_ok=True)
    extra: list[list[str]] = [[], ["--epochs", "2"], ["--epochs", "3"]]
    while len(versions_in(root)) < count:
        n = len(versions_in(root))
        before = set(versions_in(root))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "recserve.training",
                "train",
                "--bundles",
                str(root),
                *TRAIN_ARGS,
                *extra[n % len(extra)],
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if set(versions_in(root)) == before:
            raise RuntimeError("training wrote no new bundle version")
    return versions_in(root)


def read_catalog(bundle: Path) -> tuple[list[str], list[str]]:
    users = [
        json.loads(line)["user_id"] for line in (bundle / "users.jsonl").read_text().splitlines()
    ]
    items = json.loads((bundle / "item_ids.json").read_text())
    return [str(u) for u in users], [str(i) for i in items]
