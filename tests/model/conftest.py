"""Fixtures of the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from recserve.model.bundle import write_bundle

from .builders import make_contents


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("bundles"), make_contents())
