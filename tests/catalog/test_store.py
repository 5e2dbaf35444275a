"""CatalogStore against a real redis-server: atomic writes, one stream entry per write,
seeding that never overwrites, durability outside model versions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from recserve.catalog import CatalogItem, CatalogLimits, CatalogStore, StreamPosition
from recserve.devstack.stack import free_port
from recserve.model.redis_layout import RedisLayout, gc_versions
from recserve.runtime.errors import InvalidArgument
from tests.catalog.conftest import start_redis

LAYOUT = RedisLayout()


async def stream(client: aioredis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in await client.xrange(LAYOUT.catalog_changes_key())]


async def test_upsert_creates_then_replaces(store: CatalogStore, aclient: aioredis.Redis) -> None:
    created, updated = await store.upsert(
        [
            CatalogItem("a", {"genre": "Comedy"}, {"margin": 0.31}),
            CatalogItem("b", available=False),
        ]
    )
    assert (created, updated) == (2, 0)
    a, b, missing = await store.get(["a", "b", "nope"])
    assert a is not None and b is not None and missing is None
    assert (a.attributes, a.numeric, a.available) == ({"genre": "Comedy"}, {"margin": 0.31}, True)
    assert a.updated_at_ms > 0
    assert b.available is False

    # Replaces attributes; availability left unset keeps the stored value.
    assert await store.upsert([CatalogItem("b", {"genre": "Drama"}), CatalogItem("c")]) == (1, 1)
    (b,) = await store.get(["b"])
    assert b is not None and b.attributes == {"genre": "Drama"} and b.available is False
    assert await store.upsert([CatalogItem("a", numeric={"price": 1e-300})]) == (0, 1)
    (a,) = await store.get(["a"])
    assert a is not None and a.attributes == {} and a.numeric == {"price": 1e-300}
    assert await aclient.smembers(LAYOUT.catalog_ids_key()) == {b"a", b"b", b"c"}
    assert await aclient.smembers(LAYOUT.catalog_unavailable_key()) == {b"b"}

    entries = await stream(aclient)
    assert [(e[b"op"], e[b"ids"]) for e in entries] == [
        (b"upsert", b'["a", "b"]'),
        (b"upsert", b'["b", "c"]'),
        (b"upsert", b'["a"]'),
    ]


async def test_a_call_with_one_bad_item_writes_nothing(
    store: CatalogStore, aclient: aioredis.Redis
) -> None:
    await store.upsert([CatalogItem("a", {"genre": "Comedy"})])
    before = await stream(aclient)
    with pytest.raises(InvalidArgument, match=r'items\[1\].numeric_attributes\["m"\]'):
        await store.upsert(
            [CatalogItem("a", {"genre": "Drama"}), CatalogItem("new", numeric={"m": math.nan})]
        )
    (a,) = await store.get(["a"])
    assert a is not None and a.attributes == {"genre": "Comedy"}
    assert not await aclient.exists(LAYOUT.catalog_item_key("new"))
    assert await stream(aclient) == before


async def test_limits_come_from_the_store(aclient: aioredis.Redis) -> None:
    store = CatalogStore(aclient, limits=CatalogLimits(max_items_per_call=1))
    with pytest.raises(InvalidArgument, match="2 items in one request; the limit is 1"):
        await store.upsert([CatalogItem("a"), CatalogItem("b")])
    assert await aclient.dbsize() == 0


async def test_set_availability_counts_changes_and_logs_only_them(
    store: CatalogStore, aclient: aioredis.Redis
) -> None:
    await store.upsert([CatalogItem("a"), CatalogItem("b", available=False)])
    assert await store.set_availability(["a", "b", "a"], False) == 1
    # An id the catalog does not hold yet becomes an item (a takedown may come first).
    assert await store.set_availability(["b", "later"], False) == 1
    assert await store.set_availability(["a", "b", "later"], False) == 0
    assert await store.set_availability(["fresh"], True) == 0
    a, later, fresh = await store.get(["a", "later", "fresh"])
    assert a is not None and a.available is False
    assert later is not None and later.available is False and later.attributes == {}
    assert fresh is not None and fresh.available is True
    assert await aclient.smembers(LAYOUT.catalog_unavailable_key()) == {b"a", b"b", b"later"}
    entries = [(e[b"op"], e[b"ids"]) for e in await stream(aclient)]
    assert entries[1:] == [(b"availability", b'["a"]'), (b"availability", b'["later"]')]
    assert await store.set_availability(["a", "later"], True) == 2
    assert await aclient.smembers(LAYOUT.catalog_unavailable_key()) == {b"b"}


async def test_seed_missing_never_overwrites(store: CatalogStore, aclient: aioredis.Redis) -> None:
    await store.upsert([CatalogItem("1", {"genre": "Live"}, available=False)])
    seeded = await store.seed_missing(
        CatalogItem(str(i), {"genre": "Bundle"}) for i in range(1, 2501)
    )
    assert seeded == 2499
    one, two = await store.get(["1", "2"])
    assert one is not None and one.attributes == {"genre": "Live"} and one.available is False
    assert two is not None and two.attributes == {"genre": "Bundle"} and two.available is True
    assert await store.seed_missing([CatalogItem("1"), CatalogItem("2")]) == 0
    # One entry per batch that wrote something (1000 ids per batch).
    assert [e[b"op"] for e in await stream(aclient)] == [b"upsert"] * 4


async def test_snapshot_and_changes_after_its_position(store: CatalogStore) -> None:
    assert (await store.snapshot()).position == StreamPosition()
    await store.upsert([CatalogItem("a", {"g": "x"}), CatalogItem("b", available=False)])
    # Read from an empty stream: nothing missed, the entry is still there to read.
    assert not await store.missed_changes(StreamPosition())
    snapshot = await store.snapshot()
    assert sorted(i.item_id for i in snapshot.items) == ["a", "b"]
    assert await store.changes(snapshot.position, block_ms=1) == []
    await store.set_availability(["a"], False)
    (change,) = await store.changes(snapshot.position, block_ms=1)
    assert (change.op, change.ids) == ("availability", ["a"])
    assert snapshot.position.advanced([change]) == await store.position()
    assert not await store.missed_changes(snapshot.position)


async def test_missed_changes_after_trim_or_lost_stream(aclient: aioredis.Redis) -> None:
    store = CatalogStore(aclient, stream_maxlen=1)
    await store.upsert([CatalogItem("a")])
    position = await store.position()
    assert not await store.missed_changes(position)
    for i in range(300):  # MAXLEN ~ trims whole stream nodes (100 entries each)
        await store.upsert([CatalogItem(f"x{i}")])
    assert await store.missed_changes(position)
    assert not await store.missed_changes(await store.position())
    await aclient.delete(LAYOUT.catalog_changes_key())
    assert await store.missed_changes(position)
    assert not await store.missed_changes(StreamPosition())


async def test_version_gc_keeps_the_catalog(
    store: CatalogStore, aclient: aioredis.Redis, redis_client: redis.Redis
) -> None:
    await store.upsert([CatalogItem("a", {"g": "x"})])
    for n, version in enumerate(["v1", "v2", "catalog"]):
        redis_client.zadd(LAYOUT.versions_key(), {version: n})
        redis_client.set(LAYOUT.vector_key(version, "a"), b"\0" * 8)
        redis_client.hset(LAYOUT.meta_key(version), "dim", 2)
    redis_client.set(LAYOUT.active_key(), "catalog")
    assert gc_versions(redis_client, retention=1) == ["v2", "v1"]
    assert not redis_client.exists(LAYOUT.vector_key("v1", "a"))
    (a,) = await store.get(["a"])
    assert a is not None and a.attributes == {"g": "x"}
    assert len(await stream(aclient)) == 1


async def test_catalog_survives_a_redis_restart_with_aof(tmp_path: Path) -> None:
    port = free_port()
    process = start_redis(tmp_path, port, aof=True)
    try:
        client = aioredis.Redis(port=port, socket_timeout=5)
        store = CatalogStore(client)
        await store.upsert([CatalogItem("a", {"g": "x"}, {"m": 2.5}), CatalogItem("b")])
        await store.set_availability(["b"], False)
        position = await store.position()
        await client.aclose()
        process.kill()  # no clean shutdown: only what the AOF holds comes back
        process.wait(10)
        process = start_redis(tmp_path, port, aof=True)
        client = aioredis.Redis(port=port, socket_timeout=5)
        store = CatalogStore(client)
        snapshot = await store.snapshot()
        by_id = {i.item_id: i for i in snapshot.items}
        assert by_id["a"].attributes == {"g": "x"} and by_id["a"].numeric == {"m": 2.5}
        assert by_id["b"].available is False
        assert snapshot.position == position
        assert not await store.missed_changes(position)
        await client.aclose()
    finally:
        process.kill()
        process.wait(10)
