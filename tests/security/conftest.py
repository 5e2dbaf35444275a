"""Certificates for the TLS tests (the trained catalog is tests/conftest.py's `catalog_bundles`)."""

from __future__ import annotations

import pytest

from chaos.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
