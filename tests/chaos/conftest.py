"""Make the repository's `chaos` package importable (it is not part of the wheel) and share one
trained catalog per session with tests/security."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from chaos.bundles import train_versions  # noqa: E402


@pytest.fixture(scope="session")
def chaos_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle version, trained once per session (tests/security reuses the directory)."""
    root = tmp_path_factory.getbasetemp() / "chaos-bundles"
    train_versions(root, 1)
    return root
