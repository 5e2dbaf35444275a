"""The candidates service searches past taken-down items (real Redis, real CatalogView, real
ScaNN bundle; no gRPC): lists keep their length, the mask follows the change stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from recserve.candidates.availability import UnavailableItems
from recserve.candidates.search import CandidateQuery, search
from recserve.catalog import CatalogStore, CatalogView
from recserve.model import Bundle, load_bundle
from recserve.model.bundle import write_bundle
from tests.conftest import RedisServer
from tests.model.builders import make_contents

MAX = 50


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return load_bundle(write_bundle(tmp_path_factory.mktemp("bundles"), make_contents()))


@pytest.fixture
async def store(
    redis_client: redis.Redis, redis_server: RedisServer
) -> AsyncIterator[CatalogStore]:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield CatalogStore(client)
    await client.aclose()


@pytest.fixture
async def view(store: CatalogStore) -> CatalogView:
    view = CatalogView(store, block_ms=50)
    await view.resnapshot()
    return view


def neighbours(bundle: Bundle, seed: int) -> list[int]:
    scores = bundle.input_vectors @ bundle.input_vectors[seed]
    return [i for i in np.argsort(-scores, kind="stable").tolist() if i != seed]


def similar(bundle: Bundle, unavailable: UnavailableItems, seed: int, n: int) -> list[int]:
    [result] = search(
        bundle,
        [CandidateQuery(b"", f"item-{seed}", [], n)],
        max_candidates=MAX,
        unavailable=unavailable.of(bundle.version, bundle),
    )
    return result.item_indices


async def take_down(
    store: CatalogStore, view: CatalogView, indices: list[int], available: bool = False
) -> None:
    await store.set_availability([f"item-{i}" for i in indices], available)
    while await view.poll_once():
        pass


async def test_taken_down_neighbours_are_skipped_and_the_list_keeps_its_length(
    bundle: Bundle, store: CatalogStore, view: CatalogView
) -> None:
    unavailable = UnavailableItems(view)
    reference = neighbours(bundle, 7)
    assert similar(bundle, unavailable, 7, 10) == reference[:10]
    down = reference[:10:2]
    await take_down(store, view, down)
    assert unavailable.of(bundle.version, bundle).count == len(down)
    assert similar(bundle, unavailable, 7, 10) == [i for i in reference if i not in down][:10]
    await take_down(store, view, down, available=True)
    assert unavailable.of(bundle.version, bundle).count == 0
    assert similar(bundle, unavailable, 7, 10) == reference[:10]


async def test_a_takedown_around_the_query_is_searched_past(
    bundle: Bundle, store: CatalogStore, view: CatalogView
) -> None:
    """More unavailable items near the query than the takedown share predicts: the search goes
    deeper until the list is full."""
    unavailable = UnavailableItems(view)
    reference = neighbours(bundle, 3)
    await take_down(store, view, reference[:120])
    assert similar(bundle, unavailable, 3, 20) == reference[120:140]


async def test_a_reload_rebuilds_the_mask(
    bundle: Bundle, store: CatalogStore, view: CatalogView
) -> None:
    unavailable = UnavailableItems(view)
    reference = neighbours(bundle, 11)
    assert similar(bundle, unavailable, 11, 5) == reference[:5]
    await store.set_availability([f"item-{reference[0]}"], False)
    await view.resnapshot()  # op "snapshot": the changed ids are not named one by one
    assert similar(bundle, unavailable, 11, 5) == reference[1:6]
