"""The live catalog as training input (`train --catalog-redis URL`), so the next bundle agrees
with the catalog:

* each catalog item's categorical attributes become its item features, merged with the data's
  item features attribute by attribute: where both name the same attribute the catalog's value
  wins (it is what serving filters and diversifies on); the data's other features stay. A value
  with ``|`` is multi-valued ("Action|Comedy" -> ["Action", "Comedy"]), as in feature tables.
  Numeric attributes (margin, price) are not ranker features: they change at serving time and
  reach answers through request boosts, so a bundle does not freeze them;
* items the catalog marks unavailable stay in training (their events are real history) but are
  kept out of the bundle's popular (cold-start / fallback) list.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from recserve.catalog.store import CatalogStore
from recserve.catalog.types import CatalogItem
from recserve.model.features import MULTI_VALUE_SEPARATOR, RawValue
from recserve.runtime.config import Env, RedisConfig
from recserve.runtime.redis_client import connect
from recserve.training.data.model import Dataset

# A whole-catalog read in batches: seconds, not the services' sub-second budget.
READ_TIMEOUT_S = "10"


def read_catalog(url: str) -> list[CatalogItem]:
    """Every catalog item (`CatalogStore.snapshot`). The URL's password is overridden by
    RECSERVE_REDIS_PASSWORD and a rediss:// URL uses RECSERVE_REDIS_TLS_*, as in the services."""
    environ = {**os.environ, "RECSERVE_REDIS_URL": url, "RECSERVE_REDIS_TIMEOUT_S": READ_TIMEOUT_S}
    config = RedisConfig.from_env(Env(environ))

    async def snapshot() -> list[CatalogItem]:
        client = connect(config)
        try:
            return (await CatalogStore(client).snapshot()).items
        finally:
            await client.aclose()

    return asyncio.run(snapshot())


def _feature(value: str) -> RawValue:
    if MULTI_VALUE_SEPARATOR in value:
        return [v for v in value.split(MULTI_VALUE_SEPARATOR) if v]
    return value


def merge_catalog(dataset: Dataset, items: Sequence[CatalogItem]) -> None:
    """Merges `items` into `dataset` in place (see the module docstring) and notes what changed
    in its load report: catalog attributes into `item_features`, unavailable ids into
    `unavailable`."""
    known = set(dataset.interactions.item_ids)
    replaced = added = 0
    for item in items:
        features = dataset.item_features.setdefault(item.item_id, {})
        for name, value in item.attributes.items():
            if name in features:
                replaced += features[name] != _feature(value)
            else:
                added += 1
            features[name] = _feature(value)
    unavailable = frozenset(i.item_id for i in items if i.available is False)
    dataset.unavailable = unavailable
    in_data = sum(1 for i in items if i.item_id in known)
    dataset.report.notes.append(
        f"catalog: {len(items):,} items ({in_data:,} in the data, "
        f"{len(unavailable & known):,} of those unavailable: kept out of the popular list); "
        f"{added:,} attributes added, {replaced:,} data features replaced by the catalog's value"
    )
