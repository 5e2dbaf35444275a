"""recserve.embedding_store.store against a real redis-server (tests/conftest.py), no gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from recserve.embedding_store.store import EmbeddingStore, UserStateQuery
from recserve.model import Bundle, RedisLayout, load_bundle, publish_bundle, query_vector
from recserve.model.bundle import write_bundle
from recserve.model.events import AppendResult, UserEvent, decode_entry
from recserve.model.redis_layout import text
from recserve.runtime.errors import FailedPrecondition, InvalidArgument
from recserve.vectors import encode_vector
from tests.conftest import RedisServer
from tests.model.builders import DIM, make_contents

LAYOUT = RedisLayout()
MAX_HISTORY = 6


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Bundle]:
    """Two versions with different vectors: (old, new)."""
    root = tmp_path_factory.mktemp("bundles")
    old, new = (load_bundle(write_bundle(root, make_contents(seed))) for seed in (0, 1))
    assert old.version != new.version
    return old, new


@pytest.fixture
def published(redis_client: redis.Redis, bundles: tuple[Bundle, Bundle]) -> tuple[Bundle, Bundle]:
    """Both versions published, the new one active; user u1 seeded with item-1, item-2."""
    old, new = bundles
    for bundle in bundles:
        publish_bundle(
            redis_client,
            bundle,
            user_histories={"u1": ["item-1", "item-2"]},
            user_features={"u1": {"age": "30", "gender": "F"}},
        )
    return old, new


@pytest.fixture
async def store(
    redis_server: RedisServer, redis_client: redis.Redis
) -> AsyncIterator[EmbeddingStore]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield EmbeddingStore(client, LAYOUT, max_history=MAX_HISTORY)
    await client.aclose()


def stored_events(client: redis.Redis, user_id: str) -> list[str]:
    """Oldest first."""
    return [text(e) for e in client.lrange(LAYOUT.user_events_key(user_id), 0, -1)][::-1]


async def test_nothing_published_is_a_failed_precondition(store: EmbeddingStore) -> None:
    assert await store.active_version() is None
    with pytest.raises(FailedPrecondition, match="no model version"):
        await store.meta("")


async def test_meta_pins_the_requested_version(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    old, new = published
    assert await store.active_version() == new.version
    assert (await store.meta("")).version == new.version
    pinned = await store.meta(old.version)
    assert pinned.version == old.version and pinned.dim == DIM and pinned.query == old.query
    with pytest.raises(FailedPrecondition, match="not published"):
        await store.meta("19990101T000000-deadbeef")


async def test_get_vectors_reads_the_pinned_version(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    old, new = published
    assert await store.get_vectors(await store.meta(old.version), []) == ({}, [])
    for bundle in published:
        meta = await store.meta(bundle.version)
        found, missing = await store.get_vectors(meta, ["item-3", "nope", "item-3", "item-0"])
        assert list(found) == ["item-3", "item-0"] and missing == ["nope"]
        np.testing.assert_array_equal(found["item-3"], bundle.input_vectors[3])
    assert not np.array_equal(old.input_vectors[3], new.input_vectors[3])


async def test_upsert_validates_every_vector_before_writing_any(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    meta = await store.meta("")
    good = encode_vector(np.ones(DIM))
    with pytest.raises(InvalidArgument, match="'bad' has 8 bytes"):
        await store.upsert_vectors(meta, [("fresh", good), ("bad", b"\x00" * 8)])
    with pytest.raises(InvalidArgument, match="NaN"):
        await store.upsert_vectors(meta, [("fresh", encode_vector(np.full(DIM, np.inf)))])
    with pytest.raises(InvalidArgument, match="empty"):
        await store.upsert_vectors(meta, [("", good)])
    assert (await store.get_vectors(meta, ["fresh"]))[1] == ["fresh"]

    assert await store.upsert_vectors(meta, [("fresh", good)]) == 1
    found, _ = await store.get_vectors(meta, ["fresh"])
    np.testing.assert_array_equal(found["fresh"], np.ones(DIM))
    # Only the version written to has it.
    old = await store.meta(published[0].version)
    assert (await store.get_vectors(old, ["fresh"]))[1] == ["fresh"]


async def test_delete_counts_only_existing_vectors(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    meta = await store.meta("")
    assert await store.delete_vectors(meta, []) == 0
    assert await store.delete_vectors(meta, ["item-5", "ghost"]) == 1
    assert (await store.get_vectors(meta, ["item-5"]))[1] == ["item-5"]


async def test_user_state_joins_stored_history_and_recent_items(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    new = published[1]
    meta = await store.meta("")
    [state] = await store.user_states(meta, [UserStateQuery("u1", ["item-9", "ghost"])])
    assert state.history == ["item-1", "item-2", "item-9"]
    assert state.features == {"age": "30", "gender": "F"}
    assert state.unknown_item_ids == ["ghost"]
    assert state.query_vector is not None
    np.testing.assert_allclose(
        state.query_vector, query_vector(new.input_vectors[[1, 2, 9]], new.query), rtol=1e-6
    )


async def test_user_states_cold_anonymous_and_batched(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    meta = await store.meta("")
    queries = [
        UserStateQuery("stranger", []),
        UserStateQuery("", ["item-4"]),
        UserStateQuery("u1", []),
        UserStateQuery("", ["ghost"]),
    ]
    stranger, anonymous, u1, unknown_only = await store.user_states(meta, queries)
    assert stranger.history == [] and stranger.features == {} and stranger.query_vector is None
    assert anonymous.history == ["item-4"] and anonymous.query_vector is not None
    assert u1.history == ["item-1", "item-2"]
    assert unknown_only.query_vector is None and unknown_only.unknown_item_ids == ["ghost"]
    assert await store.user_states(meta, []) == []
    alone = [(await store.user_states(meta, [q]))[0] for q in queries]
    assert [s.history for s in alone] == [
        s.history for s in (stranger, anonymous, u1, unknown_only)
    ]


async def test_query_vector_uses_only_the_last_history_length_items(
    store: EmbeddingStore, published: tuple[Bundle, Bundle]
) -> None:
    new = published[1]
    meta = await store.meta("")
    recent = [f"item-{i}" for i in range(10, 14)]  # 2 stored + 4 recent; history_length is 5
    [state] = await store.user_states(meta, [UserStateQuery("u1", recent)])
    assert state.query_vector is not None
    assert meta.query.history_length == 5
    np.testing.assert_allclose(
        state.query_vector,
        query_vector(new.input_vectors[[2, 10, 11, 12, 13]], new.query),
        rtol=1e-6,
    )


def events(item_ids: list[str], timestamps: list[int] | None = None) -> list[UserEvent]:
    return [
        UserEvent(i, t) for i, t in zip(item_ids, timestamps or [0] * len(item_ids), strict=True)
    ]


async def test_append_orders_by_timestamp_and_drops_unknown_items(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    meta = await store.meta("")
    result = await store.append_events(
        meta, "u2", events(["item-7", "ghost", "item-3", "ghost"], [300, 100, 200, 400])
    )
    assert result == AppendResult(2, ["ghost"], 0)
    assert stored_events(redis_client, "u2") == ["item-3", "item-7"]
    # Without timestamps: request order.
    await store.append_events(meta, "u2", events(["item-8", "item-4"]))
    assert stored_events(redis_client, "u2") == ["item-3", "item-7", "item-8", "item-4"]


async def test_history_is_capped_at_max_history(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    meta = await store.meta("")
    items = [f"item-{i}" for i in range(20, 30)]
    assert await store.append_events(meta, "u1", events(items)) == AppendResult(10, [], 0)
    assert stored_events(redis_client, "u1") == items[-MAX_HISTORY:]
    [state] = await store.user_states(meta, [UserStateQuery("u1", [])])
    assert state.history == items[-MAX_HISTORY:]


async def test_an_event_id_is_stored_once_per_user_until_its_ttl(
    redis_server: RedisServer, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    store = EmbeddingStore(client, LAYOUT, max_history=MAX_HISTORY, event_id_ttl_s=1)
    meta = await store.meta("")
    batch = [
        UserEvent("item-5", event_id="e-1"),
        UserEvent("item-6"),
        UserEvent("ghost", 0, "", "e-9"),
    ]
    assert await store.append_events(meta, "u4", batch) == AppendResult(2, ["ghost"], 0)
    # The retry: the event with an id is not stored again, the one without is.
    assert await store.append_events(meta, "u4", batch) == AppendResult(2, ["ghost"], 1)
    # The same id twice in one call, and the same id for another user.
    twice = [UserEvent("item-7", 1, "", "e-2"), UserEvent("item-8", 2, "", "e-2")]
    assert await store.append_events(meta, "u4", twice) == AppendResult(2, [], 1)
    assert await store.append_events(meta, "u5", batch[:1]) == AppendResult(1, [], 0)
    assert stored_events(redis_client, "u4") == ["item-5", "item-6", "item-6", "item-7"]
    assert stored_events(redis_client, "u5") == ["item-5"]
    # Only ids of stored events are remembered, each with the configured TTL.
    assert redis_client.ttl(LAYOUT.user_event_id_key("u4", "e-1")) == 1
    assert not redis_client.exists(LAYOUT.user_event_id_key("u4", "e-9"))
    await asyncio.sleep(1.1)
    assert await store.append_events(meta, "u4", batch[:1]) == AppendResult(1, [], 0)
    await client.aclose()


async def test_event_types_are_stored_and_only_history_types_are_history(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    contents = make_contents(2)
    trained = dataclasses.replace(
        contents, manifest={**contents.manifest, "data": {"event_types": ["click", "view"]}}
    )
    bundle = load_bundle(write_bundle(tmp_path, trained))
    publish_bundle(redis_client, bundle, user_histories={"u6": ["item-1"]})
    client = aioredis.Redis.from_url(redis_server.url)
    by_training = EmbeddingStore(client, LAYOUT, max_history=MAX_HISTORY)
    configured = EmbeddingStore(
        client, LAYOUT, max_history=MAX_HISTORY, history_event_types=frozenset({"impression"})
    )
    meta = await by_training.meta("")
    assert meta.history_types == {"", "click", "view"}
    typed = [
        UserEvent("item-2", 1, "view"),
        UserEvent("item-3", 2, "impression"),
        UserEvent("item-4", 3, ""),
        UserEvent("item-5", 4, "click"),
    ]
    assert await by_training.append_events(meta, "u6", typed) == AppendResult(4, [], 0)
    # Seeded and untyped events stay bare item ids; typed ones carry their type.
    raw = redis_client.lrange(LAYOUT.user_events_key("u6"), 0, -1)[::-1]
    assert [decode_entry(e) for e in raw] == [
        ("item-1", ""),
        ("item-2", "view"),
        ("item-3", "impression"),
        ("item-4", ""),
        ("item-5", "click"),
    ]
    assert raw[0] == b"item-1" and raw[3] == b"item-4"
    [state] = await by_training.user_states(meta, [UserStateQuery("u6", [])])
    assert state.history == ["item-1", "item-2", "item-4", "item-5"]
    [state] = await configured.user_states(await configured.meta(""), [UserStateQuery("u6", [])])
    assert state.history == ["item-1", "item-3", "item-4"]
    await client.aclose()


async def test_a_version_published_without_event_types_uses_the_default_type_only(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    meta = await store.meta("")
    assert meta.history_types == {""}
    redis_client.hdel(LAYOUT.meta_key(published[0].version), "event_types")
    assert (await store.meta(published[0].version)).history_types == {""}
    await store.append_events(meta, "u1", [UserEvent("item-3", 0, "view")])
    [state] = await store.user_states(meta, [UserStateQuery("u1", [])])
    assert state.history == ["item-1", "item-2"]


async def test_user_states_read_at_most_max_history_events(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    # Written behind the store's back: more than it would keep.
    items = [f"item-{i}" for i in range(40, 50)]
    redis_client.lpush(LAYOUT.user_events_key("u3"), *items)
    [state] = await store.user_states(await store.meta(""), [UserStateQuery("u3", [])])
    assert state.history == items[-MAX_HISTORY:]


@pytest.mark.parametrize(
    ("user_id", "batch", "message"),
    [
        ("", [UserEvent("item-1")], "user_id must not contain empty ids"),
        ("u1", [UserEvent("item-1"), UserEvent("x" * 300)], r"item_ids\[1\] has an id longer"),
        ("u1", [UserEvent("item-1", -5)], r"timestamps_ms\[0\]=-5 must be >= 0"),
        ("u1", [UserEvent("item-1", 0, "a b")], r"event_types\[0\] 'a b' may only contain"),
        (
            "u1",
            [UserEvent("item-1"), UserEvent("item-2", 0, "", "e" * 129)],
            r"event_ids\[1\] is 129",
        ),
        ("u1", [UserEvent("item-1", 0, "", "é")], r"event_ids\[0\] 'é' may only contain"),
    ],
)
async def test_append_rejects_bad_requests_writing_nothing(
    store: EmbeddingStore,
    published: tuple[Bundle, Bundle],
    redis_client: redis.Redis,
    user_id: str,
    batch: list[UserEvent],
    message: str,
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await store.append_events(await store.meta(""), user_id, batch)
    assert stored_events(redis_client, "u1") == ["item-1", "item-2"]
