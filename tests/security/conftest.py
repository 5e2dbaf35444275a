"""Make the repository's `chaos` package importable, share the session's trained catalog with
tests/chaos, and generate certificates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from chaos.bundles import train_versions  # noqa: E402
from chaos.pki import Pki, make_pki  # noqa: E402


@pytest.fixture(scope="session")
def security_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle version; the same directory (and training) as tests/chaos' `chaos_bundles`."""
    root = tmp_path_factory.getbasetemp() / "chaos-bundles"
    train_versions(root, 1)
    return root


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
