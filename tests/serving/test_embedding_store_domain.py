"""recserve.embedding_store.store against a real redis-server (tests/conftest.py), no gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from recserve.embedding_store.store import EmbeddingStore, UserStateQuery
from recserve.model import Bundle, RedisLayout, load_bundle, publish_bundle, query_vector
from recserve.model.bundle import write_bundle
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


async def test_append_orders_by_timestamp_and_drops_unknown_items(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    meta = await store.meta("")
    accepted, unknown = await store.append_events(
        meta, "u2", ["item-7", "ghost", "item-3", "ghost"], [300, 100, 200, 400]
    )
    assert (accepted, unknown) == (2, ["ghost"])
    assert stored_events(redis_client, "u2") == ["item-3", "item-7"]
    # Without timestamps: request order.
    await store.append_events(meta, "u2", ["item-8", "item-4"], [])
    assert stored_events(redis_client, "u2") == ["item-3", "item-7", "item-8", "item-4"]


async def test_history_is_capped_at_max_history(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    meta = await store.meta("")
    items = [f"item-{i}" for i in range(20, 30)]
    assert await store.append_events(meta, "u1", items, []) == (10, [])
    assert stored_events(redis_client, "u1") == items[-MAX_HISTORY:]
    [state] = await store.user_states(meta, [UserStateQuery("u1", [])])
    assert state.history == items[-MAX_HISTORY:]


async def test_user_states_read_at_most_max_history_events(
    store: EmbeddingStore, published: tuple[Bundle, Bundle], redis_client: redis.Redis
) -> None:
    # Written behind the store's back: more than it would keep.
    items = [f"item-{i}" for i in range(40, 50)]
    redis_client.lpush(LAYOUT.user_events_key("u3"), *items)
    [state] = await store.user_states(await store.meta(""), [UserStateQuery("u3", [])])
    assert state.history == items[-MAX_HISTORY:]


@pytest.mark.parametrize(
    ("user_id", "items", "timestamps", "message"),
    [
        ("", ["item-1"], [], "user_id must not contain empty ids"),
        ("u1", ["item-1", "item-2"], [5], "timestamps_ms has 1 entries for 2 item_ids"),
        ("u1", ["x" * 300], [], "longer than 256 bytes"),
    ],
)
async def test_append_rejects_bad_requests(
    store: EmbeddingStore,
    published: tuple[Bundle, Bundle],
    redis_client: redis.Redis,
    user_id: str,
    items: list[str],
    timestamps: list[int],
    message: str,
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await store.append_events(await store.meta(""), user_id, items, timestamps)
    assert stored_events(redis_client, "u1") == ["item-1", "item-2"]
