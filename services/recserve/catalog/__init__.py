"""The live catalog: item attributes and availability outside any model version (Redis), and
the in-memory copy serving processes read (`CatalogView`). No gRPC here."""

from recserve.catalog.store import CatalogStore, Change, Snapshot, StreamPosition
from recserve.catalog.types import CatalogItem, CatalogLimits, validate_items
from recserve.catalog.view import CatalogView

__all__ = [
    "CatalogItem",
    "CatalogLimits",
    "CatalogStore",
    "CatalogView",
    "Change",
    "Snapshot",
    "StreamPosition",
    "validate_items",
]
