"""A trained bundle and a running stack: real redis-server, four service processes, real sockets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recserve.client import RecommenderClient
from recserve.devstack import Stack, StackPorts

# A small synthetic catalog keeps `make test` fast; MovieLens is what `make up` trains on.
TRAIN_ARGS = ["--format", "synthetic", "--synthetic-items", "400", "--synthetic-users", "300",
              "--synthetic-events", "20000", "--seed", "7"]  # fmt: skip


def train(bundles: Path, *extra: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "recserve.training",
            "train",
            "--bundles",
            str(bundles),
            *TRAIN_ARGS,
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundles")
    train(root)
    return root


def start_stack(run_dir: Path, bundles: Path, **env: str) -> Stack:
    stack = Stack(run_dir, bundles, StackPorts.free())
    try:
        stack.up(
            extra_env={
                "RECSERVE_MODEL_POLL_INTERVAL_S": "0.2",
                "RECSERVE_LOG_LEVEL": "WARNING",
                **env,
            }
        )
    except Exception:
        stack.down()
        raise
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, bundles: Path) -> Iterator[Stack]:
    """Fresh per test module, so fault injection in one module cannot leak into another."""
    stack = start_stack(tmp_path_factory.mktemp("run"), bundles)
    yield stack
    stack.down()


@pytest.fixture
def client(stack: Stack) -> Iterator[RecommenderClient]:
    with RecommenderClient(stack.address("gateway"), timeout_s=5) as client:
        yield client
