"""An in-memory stand-in for `recserve.catalog.view.CatalogView`'s reads, for pure unit tests of
finalize and the pipeline (the real follower is exercised in test_takedown.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class StaticCatalog:
    def __init__(
        self,
        attributes: Mapping[str, Mapping[str, str]] | None = None,
        numeric: Mapping[str, Mapping[str, float]] | None = None,
        unavailable: Iterable[str] = (),
    ):
        self._attributes = dict(attributes or {})
        self._numeric = dict(numeric or {})
        self.unavailable = set(unavailable)

    def is_available(self, item_id: str) -> bool:
        return item_id not in self.unavailable

    def attributes(self, item_id: str) -> Mapping[str, str]:
        return self._attributes.get(item_id, {})

    def numeric(self, item_id: str) -> Mapping[str, float]:
        return self._numeric.get(item_id, {})

    def take_new_item_written_at(self, item_id: str) -> float | None:
        return None
