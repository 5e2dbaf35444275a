"""The last step of every answer path (full pipeline, ANN order, popular items, cold start,
similar items): availability, exclusions and filters from the live catalog, then business
objectives, then the top k. Pure: the catalog is read through `CatalogLookup`."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from recserve.gateway.domain import CatalogLookup
from recserve.items import ScoredItem
from recserve.model.filters import ItemFilter
from recserve.model.objectives import Boost, Diversity, apply_boosts, attribute_values, diversify

# Items asked from a backend beyond k, so that what the gateway's catalog copy still drops (an
# item taken down after the backend's copy saw it) leaves k.
FETCH_MARGIN = 10


@dataclass(frozen=True)
class FinalizeQuery:
    k: int
    filters: Sequence[ItemFilter] = ()
    exclude_item_ids: Collection[str] = frozenset()
    boosts: Sequence[Boost] = ()
    diversity: Diversity | None = None

    @property
    def reorders(self) -> bool:
        """Boosts or diversity: an item past the first k that pass may still be in the answer."""
        return bool(self.boosts) or (self.diversity is not None and self.diversity.active)

    @property
    def needs_long_list(self) -> bool:
        """Filters may drop most items and objectives reorder them: finalize wants every
        candidate, not just k plus the margin."""
        return bool(self.filters) or self.reorders


def passes(filters: Sequence[ItemFilter], attributes: Mapping[str, str]) -> bool:
    return all(f.accepts(attribute_values(attributes, f.feature)) for f in filters)


def finalize(
    ranked: Iterable[ScoredItem], query: FinalizeQuery, view: CatalogLookup
) -> list[ScoredItem]:
    """Best first in, best first out: drops unavailable, then excluded, then filtered-out items,
    re-scores with the boosts, applies diversity and keeps the top k. `ranked` may be lazy:
    without boosts or diversity it is read only until k items passed."""
    exclude = set(query.exclude_item_ids)
    kept: list[ScoredItem] = []
    for item in ranked:
        item_id = item.item_id
        if not view.is_available(item_id) or item_id in exclude:
            continue
        if query.filters and not passes(query.filters, view.attributes(item_id)):
            continue
        kept.append(item)
        if not query.reorders and len(kept) == query.k:
            return kept
    boosted = apply_boosts(kept, view.numeric, query.boosts)
    return diversify(boosted, view.attributes, query.diversity, query.k)
