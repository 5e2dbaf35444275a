"""Which items of a loaded bundle the live catalog marks unavailable, as a boolean mask over
the bundle's item indices.

The mask is built once per bundle from the catalog copy's takedown set, then kept current from
the copy's change callbacks (only the ids an entry names), so a search pays one array lookup
per ScaNN result whatever the size of the takedown set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recserve.catalog.view import CatalogView
from recserve.model import Bundle

# Masks kept: the versions a ModelRegistry serves (the newest and the one before).
_KEEP = 2


@dataclass
class Unavailable:
    """`mask[i]` is True when item index i of the bundle is unavailable; `count` of them."""

    mask: np.ndarray
    count: int


class UnavailableItems:
    def __init__(self, view: CatalogView):
        self._view = view
        self._masks: dict[str, tuple[Bundle, Unavailable]] = {}
        view.on_change.append(self._changed)

    def of(self, version: str, bundle: Bundle) -> Unavailable:
        entry = self._masks.get(version)
        if entry is not None and entry[0] is bundle:
            return entry[1]
        index = bundle.item_index
        mask = np.zeros(len(bundle.item_ids), dtype=bool)
        mask[[index[i] for i in self._view.unavailable_ids() if i in index]] = True
        unavailable = Unavailable(mask, int(np.count_nonzero(mask)))
        self._masks.pop(version, None)
        self._masks[version] = (bundle, unavailable)
        while len(self._masks) > _KEEP:
            del self._masks[next(iter(self._masks))]
        return unavailable

    def _changed(self, ids: Sequence[str], op: str) -> None:
        if op == "snapshot":
            # A reload may change any item: rebuild from the new set on next use.
            self._masks.clear()
            return
        for bundle, unavailable in self._masks.values():
            index = bundle.item_index
            for item_id in ids:
                position = index.get(item_id)
                if position is None:
                    continue
                taken_down = not self._view.is_available(item_id)
                if unavailable.mask[position] != taken_down:
                    unavailable.mask[position] = taken_down
                    unavailable.count += 1 if taken_down else -1
