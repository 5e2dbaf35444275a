"""The trainer reads the live catalog (`train --catalog-redis URL`) from a real redis-server:
catalog attributes become item features (the catalog wins), unavailable items leave the
bundle's popular list."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from recserve.catalog import CatalogItem, CatalogStore
from recserve.model import load_bundle
from recserve.model.bundle import MAX_POPULAR_ITEMS
from recserve.model.features import RawValue
from recserve.training.__main__ import main
from recserve.training.catalog import merge_catalog, read_catalog
from recserve.training.data import Dataset, Interactions, LoadReport
from recserve.training.pipeline import Progress, TrainResult, train

from .conftest import small_config


@pytest.fixture
def catalog_url(redis_client: redis.Redis) -> str:
    """The session's real redis-server, flushed by `redis_client`."""
    kwargs = redis_client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


def write_catalog(url: str, items: list[CatalogItem], unavailable: list[str]) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(url, socket_timeout=5)
        try:
            store = CatalogStore(client)
            await store.upsert(items)
            await store.set_availability(unavailable, False)
        finally:
            await client.aclose()

    asyncio.run(run())


def tiny_dataset() -> Dataset:
    interactions = Interactions(
        user_ids=["u"],
        item_ids=["a", "b"],
        users=np.zeros(2, np.int32),
        items=np.arange(2, dtype=np.int32),
        timestamps=np.arange(2, dtype=np.int64),
        weights=np.ones(2, np.float32),
    )
    features: dict[str, dict[str, RawValue]] = {
        "a": {"genre": ["Drama"], "year": "1990"},
        "b": {"genre": ["Comedy"]},
    }
    return Dataset("tiny", interactions, features, {}, LoadReport())


def test_merge_catalog_wins_on_conflicts_and_keeps_other_features() -> None:
    dataset = tiny_dataset()
    merge_catalog(
        dataset,
        [
            CatalogItem("a", {"genre": "Action|Comedy", "brand": "acme"}, {"margin": 0.3}, True),
            CatalogItem("b", {}, {}, False),
            CatalogItem("new", {"genre": "Horror"}, {}, False),
        ],
    )
    assert dataset.item_features["a"] == {
        "genre": ["Action", "Comedy"],  # the catalog's value, multi-valued on '|'
        "year": "1990",  # the data's, the catalog does not name it
        "brand": "acme",
    }
    assert "margin" not in dataset.item_features["a"]  # numeric attributes are boosts only
    assert dataset.item_features["b"] == {"genre": ["Comedy"]}
    assert dataset.item_features["new"] == {"genre": "Horror"}
    assert dataset.unavailable == {"b", "new"}
    [note] = dataset.report.notes
    assert "3 items (2 in the data, 1 of those unavailable" in note
    assert "2 attributes added, 1 data features replaced" in note


def test_read_catalog_returns_every_item(catalog_url: str) -> None:
    write_catalog(
        catalog_url,
        [CatalogItem("x", {"genre": "War"}, {"margin": 1.5}), CatalogItem("y")],
        ["y"],
    )
    items = {i.item_id: i for i in read_catalog(catalog_url)}
    assert set(items) == {"x", "y"}
    assert items["x"].attributes == {"genre": "War"}
    assert items["x"].numeric == {"margin": 1.5}
    assert (items["x"].available, items["y"].available) == (True, False)


def test_next_bundle_agrees_with_the_catalog(
    catalog_url: str,
    synthetic_dir: Path,
    trained: TrainResult,
    tmp_path: Path,
) -> None:
    before = load_bundle(trained.bundle)
    popular = [before.item_ids[i] for i in before.popular.tolist()]
    gone = popular[:3]
    relabelled = popular[5]
    write_catalog(
        catalog_url,
        [CatalogItem(relabelled, {"genres": "catalog-only-genre", "brand": "acme"})],
        gone,
    )
    config = replace(small_config(tmp_path, synthetic_dir), catalog_redis=catalog_url)
    result = train(config, Progress(lambda _msg: None))
    after = load_bundle(result.bundle)
    after_popular = [after.item_ids[i] for i in after.popular.tolist()]
    assert not set(gone) & set(after_popular)
    # the rest keep their order (the same data, the same popularity counts)
    assert after_popular == [i for i in popular if i not in gone][:MAX_POPULAR_ITEMS]
    assert set(gone) <= set(after.item_ids)  # still trained: their events are real history
    features = after.item_features[after.item_index[relabelled]]
    assert features["genres"] == "catalog-only-genre"
    assert features["brand"] == "acme"
    assert features["year"] == before.item_features[before.item_index[relabelled]]["year"]
    notes = after.manifest["data"]["load_report"]["notes"]
    assert any(n.startswith("catalog: 4 items") for n in notes), notes


def test_cli_reads_the_catalog(
    catalog_url: str,
    synthetic_dir: Path,
    tmp_path: Path,
) -> None:
    write_catalog(catalog_url, [CatalogItem("i0", {"brand": "acme"})], ["i1"])
    code = main(
        ["train", "--bundles", str(tmp_path), "--data", str(synthetic_dir),
         "--vector-size", "8", "--epochs", "1", "--workers", "1", "--num-candidates", "20",
         "--hash-bits", "10", "--catalog-redis", catalog_url]
    )  # fmt: skip
    assert code == 0
    [bundle_dir] = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    bundle = load_bundle(bundle_dir)
    assert "i1" not in json.loads((bundle_dir / "popular.json").read_text())
    assert bundle.item_features[bundle.item_index["i0"]]["brand"] == "acme"


def test_unreachable_catalog_is_a_one_line_error(
    synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", "--bundles", str(tmp_path), "--data", str(synthetic_dir),
         "--catalog-redis", "redis://127.0.0.1:1/0"]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.startswith("error: Redis:")
