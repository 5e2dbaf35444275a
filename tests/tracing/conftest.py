"""The integration tests' trained bundle (one per session), shared with tests/integration."""

from tests.integration.conftest import bundles

__all__ = ["bundles"]
