"""The public API against the real stack: parity with the offline pipeline, events, bad input."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import redis
from google.protobuf.message import Message

from recserve.client import RecommenderClient
from recserve.devstack import Stack
from recserve.devstack.stack import free_port, wait_serving
from recserve.model import RedisLayout, load_bundle, recommend
from recserve.model.events import decode_entry
from recserve.v1 import (
    candidates_pb2,
    embedding_store_pb2,
    ranking_pb2,
    recommender_pb2,
    types_pb2,
)
from recserve.v1.embedding_store_pb2_grpc import EmbeddingStoreServiceStub
from recserve.v1.recommender_pb2_grpc import RecommenderServiceStub

LAYOUT = RedisLayout()


def offline(stack: Stack, user_id: str, k: int, recent: list[str] | None = None) -> list[str]:
    """What the offline pipeline computes for the user's stored state (same input as serving)."""
    bundle_path = stack.newest_bundle()
    assert bundle_path is not None
    bundle = load_bundle(bundle_path)
    client = redis.Redis.from_url(stack.redis_url)
    # As the embedding store reads them: events of the types training used, oldest first.
    trained = {"", *bundle.manifest["data"]["event_types"]}
    entries = [decode_entry(e) for e in client.lrange(LAYOUT.user_events_key(user_id), 0, -1)]
    events = [item for item, kind in entries[::-1] if kind in trained]
    features = {
        k.decode(): v.decode() for k, v in client.hgetall(LAYOUT.user_features_key(user_id)).items()
    }
    history = [bundle.item_index[i] for i in [*events, *(recent or [])] if i in bundle.item_index]
    return [bundle.item_ids[i] for i, _, _ in recommend(bundle, history, features, k)]


def known_users(stack: Stack, count: int) -> list[str]:
    client = redis.Redis.from_url(stack.redis_url)
    keys = sorted(client.scan_iter(match="recserve:user:*:events", count=1000))[:count]
    return [k.decode().split("{", 1)[1].split("}", 1)[0] for k in keys]


def test_known_users_get_exactly_the_offline_pipeline_result(
    stack: Stack, client: RecommenderClient
) -> None:
    users = known_users(stack, 25)
    assert len(users) == 25
    for user_id in users:
        served = client.recommend(user_id, k=10)
        assert not served.degraded, served.degraded_detail
        assert served.item_ids == offline(stack, user_id, 10), user_id


def test_session_items_are_used_and_reported_when_unknown(
    stack: Stack, client: RecommenderClient
) -> None:
    user_id = known_users(stack, 1)[0]
    bundle = load_bundle(stack.newest_bundle() or Path(), parts=set())
    recent = bundle.item_ids[-3:]
    served = client.recommend(user_id, recent_item_ids=[*recent, "no-such-item"], k=10)
    assert served.unknown_item_ids == ["no-such-item"]
    assert served.item_ids == offline(stack, user_id, 10, recent)
    assert not set(recent) & set(served.item_ids)


def test_record_events_changes_the_next_recommendation(
    stack: Stack, client: RecommenderClient
) -> None:
    bundle = load_bundle(stack.newest_bundle() or Path(), parts=set())
    cold = client.recommend("brand-new-user", k=10)
    assert cold.degraded and cold.degraded_reason == "cold_start"
    items = [bundle.item_ids[i] for i in (5, 17, 42)]
    recorded = client.record_events("brand-new-user", [*items, "ghost"])
    assert recorded.accepted == 3 and recorded.unknown_item_ids == ["ghost"]
    warm = client.recommend("brand-new-user", k=10)
    assert not warm.degraded
    assert warm.item_ids != cold.item_ids
    assert not set(items) & set(warm.item_ids)
    assert warm.item_ids == offline(stack, "brand-new-user", 10)


@contextmanager
def extra_process(stack: Stack, service: str, **env: str) -> Iterator[str]:
    """One more process of `service` on the stack's Redis (and backends), on its own ports;
    yields its address."""
    port = free_port()
    process = subprocess.Popen(
        [stack.python, "-m", f"recserve.{service}"],
        env=stack.service_env(
            service,
            {"RECSERVE_GRPC_PORT": str(port), "RECSERVE_METRICS_PORT": str(free_port()), **env},
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = f"127.0.0.1:{port}"
        wait_serving(address, 60)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=15)


def stored(stack: Stack, user_id: str) -> list[tuple[str, str]]:
    """(item id, event type) of the user's stored events, oldest first."""
    client = redis.Redis.from_url(stack.redis_url)
    return [decode_entry(e) for e in client.lrange(LAYOUT.user_events_key(user_id), 0, -1)][::-1]


def record(
    address: str, request: recommender_pb2.RecordEventsRequest
) -> recommender_pb2.RecordEventsResponse:
    with grpc.insecure_channel(address) as channel:
        response: recommender_pb2.RecordEventsResponse = RecommenderServiceStub(
            channel
        ).RecordEvents(request, timeout=10)
        return response


def test_a_retried_record_events_is_stored_once_across_gateways(stack: Stack) -> None:
    items = load_bundle(stack.newest_bundle() or Path(), parts=set()).item_ids[20:24]
    request = recommender_pb2.RecordEventsRequest(
        user_id="retrying-user",
        events=[
            types_pb2.Event(item_id=items[0], timestamp_ms=1_000, event_id="order-1:a"),
            types_pb2.Event(item_id=items[1], timestamp_ms=2_000, event_id="order-1:b"),
            # No id: a retry stores it again.
            types_pb2.Event(item_id=items[2], timestamp_ms=3_000),
        ],
    )
    first = record(stack.address("gateway"), request)
    assert (first.accepted, first.duplicates) == (3, 0)
    with extra_process(stack, "gateway") as second_gateway:
        retry = record(second_gateway, request)
        assert (retry.accepted, retry.duplicates) == (3, 2)
        # The same new events sent to both gateways at once: one of them stores each.
        racing = recommender_pb2.RecordEventsRequest(
            user_id="retrying-user",
            events=[
                types_pb2.Event(item_id=items[3], timestamp_ms=4_000 + i, event_id=f"race-{i}")
                for i in range(20)
            ],
        )
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(record, [stack.address("gateway"), second_gateway], [racing] * 2)
            )
    # Each call's check-and-append is one atomic script: one call stores all, the other none.
    assert sorted(a.duplicates for a in answers) == [0, 20]
    assert [item for item, _ in stored(stack, "retrying-user")] == [
        items[0], items[1], items[2], items[2], *[items[3]] * 20,
    ]  # fmt: skip


def test_event_types_are_stored_and_history_uses_the_trained_types(stack: Stack) -> None:
    bundle = load_bundle(stack.newest_bundle() or Path(), parts=set())
    trained = bundle.manifest["data"]["event_types"]
    assert trained == ["click", "purchase", "view"]  # the synthetic data's types
    items = bundle.item_ids[30:34]
    kinds = ["view", "impression", "", "purchase"]
    request = recommender_pb2.RecordEventsRequest(
        user_id="typed-user",
        events=[
            types_pb2.Event(item_id=i, timestamp_ms=1_000 + n, event_type=kind)
            for n, (i, kind) in enumerate(zip(items, kinds, strict=True))
        ],
    )
    assert record(stack.address("gateway"), request).accepted == 4
    assert stored(stack, "typed-user") == list(zip(items, kinds, strict=True))
    query = embedding_store_pb2.GetUserStatesRequest(
        queries=[embedding_store_pb2.UserStateQuery(user_id="typed-user")]
    )

    def history(address: str) -> list[str]:
        with grpc.insecure_channel(address) as channel:
            reply = EmbeddingStoreServiceStub(channel).GetUserStates(query, timeout=10)
        return list(reply.states[0].history_item_ids)

    # Default: the types training used (and the default type "").
    assert history(stack.address("embedding_store")) == [items[0], items[2], items[3]]
    with extra_process(
        stack, "embedding_store", RECSERVE_HISTORY_EVENT_TYPES="impression, view"
    ) as configured:
        assert history(configured) == [items[0], items[1], items[2]]
    # The gateway recommends from the same history the offline pipeline reads.
    client = RecommenderClient(stack.address("gateway"), timeout_s=5)
    with client:
        assert client.recommend("typed-user", k=10).item_ids == offline(stack, "typed-user", 10)


def test_k_unset_means_ten(stack: Stack) -> None:
    user_id = known_users(stack, 1)[0]
    item = load_bundle(stack.newest_bundle() or Path(), parts=set()).item_ids[3]
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        stub = RecommenderServiceStub(channel)
        served = stub.Recommend(recommender_pb2.RecommendRequest(user_id=user_id), timeout=10)
        similar = stub.GetSimilarItems(
            recommender_pb2.GetSimilarItemsRequest(item_id=item), timeout=10
        )
    assert len(served.items) == 10 and not served.degraded
    assert [i.item_id for i in served.items] == offline(stack, user_id, 10)
    assert len(similar.items) == 10


def test_stage_scores_and_model_version(stack: Stack, client: RecommenderClient) -> None:
    user_id = known_users(stack, 1)[0]
    served = client.recommend(user_id, k=5, include_stage_scores=True)
    assert served.model_version == (stack.newest_bundle() or Path()).name
    assert all(0 < i.ranker_score <= 1 and i.score == i.ranker_score for i in served.items)
    assert [i.score for i in served.items] == sorted((i.score for i in served.items), reverse=True)


def test_filters_keep_only_matching_items(stack: Stack, client: RecommenderClient) -> None:
    bundle = load_bundle(stack.newest_bundle() or Path())
    feature = next(iter(bundle.item_features[0]))
    value = sorted(bundle.item_feature_values(0, feature))[0]
    user_id = known_users(stack, 1)[0]
    served = client.recommend(
        user_id, k=5, filters=[types_pb2.ItemFilter(feature=feature, any_of=[value])]
    )
    for item in served.items:
        assert value in bundle.item_feature_values(bundle.item_index[item.item_id], feature)


def test_similar_items(stack: Stack, client: RecommenderClient) -> None:
    bundle = load_bundle(stack.newest_bundle() or Path(), parts=set())
    item = bundle.item_ids[3]
    similar = client.similar_items(item, k=7)
    assert len(similar.item_ids) == 7 and item not in similar.item_ids
    with pytest.raises(grpc.RpcError) as info:
        client.similar_items("no-such-item", k=3)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


BAD_RECOMMEND = [
    ({"user_id": "1", "k": -3}, "k=-3"),
    ({"user_id": "1", "k": 10_000}, "k=10000"),
    ({"user_id": "1", "k": 5, "recent_item_ids": ["1"] * 1000}, "recent_item_ids"),
    ({"user_id": "1", "k": 5, "recent_item_ids": [""]}, "empty"),
    ({"user_id": "1", "k": 5, "exclude_item_ids": [""]}, "empty"),
    ({"user_id": "x" * 1000, "k": 5}, "longer than"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_RECOMMEND)
def test_bad_recommend_requests_are_invalid_argument(
    client: RecommenderClient, kwargs: dict, message: str
) -> None:  # type: ignore[type-arg]
    user_id = kwargs.pop("user_id")
    with pytest.raises(grpc.RpcError) as info:
        client.recommend(user_id, **kwargs)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert message in info.value.details()  # type: ignore[attr-defined]


# One request per service, one item/id/query over its default limit.
OVER_COUNT_LIMITS = [
    ("gateway", "/recserve.v1.RecommenderService/Recommend",
     recommender_pb2.RecommendRequest(user_id="1", k=5, exclude_item_ids=["1"] * 501),
     "501 exclude_item_ids in one request; the limit is 500"),
    ("embedding_store", "/recserve.v1.EmbeddingStoreService/GetItemVectors",
     embedding_store_pb2.GetItemVectorsRequest(item_ids=["1"] * 10_001),
     "10001 item_ids in one request; the limit is 10000"),
    ("candidates", "/recserve.v1.CandidateService/SearchCandidates",
     candidates_pb2.SearchCandidatesRequest(
         queries=[candidates_pb2.CandidateQuery(item_id="1", num_candidates=1)] * 257),
     "257 queries in one request; the limit is 256"),
    ("ranking", "/recserve.v1.RankingService/RankCandidates",
     ranking_pb2.RankCandidatesRequest(
         queries=[ranking_pb2.RankQuery(item_indices=[0] * 1001, ann_scores=[0.0] * 1001, k=1)]),
     "1001 queries[0].item_indices in one request; the limit is 1000"),
]  # fmt: skip


@pytest.mark.parametrize(("service", "method", "request_", "detail"), OVER_COUNT_LIMITS)
def test_counts_over_a_limit_are_invalid_argument_in_every_service(
    stack: Stack, service: str, method: str, request_: Message, detail: str
) -> None:
    # Too many items/ids/queries is the caller's error everywhere; RESOURCE_EXHAUSTED is kept
    # for oversized messages and load shedding.
    with (
        grpc.insecure_channel(stack.address(service)) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(method)(request_.SerializeToString(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == detail


def test_bad_record_events_are_invalid_argument(client: RecommenderClient) -> None:
    for user_id, items in (("", ["1"]), ("u", []), ("u", [""])):
        with pytest.raises(grpc.RpcError) as info:
            client.record_events(user_id, items)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def events(*fields: dict[str, object]) -> list[types_pb2.Event]:
    return [types_pb2.Event(item_id="1", **f) for f in fields]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events_", "detail"),
    [
        (events({}, {}, {"event_id": "e" * 129}), "events[2].event_id is 129 characters long"),
        (events({"event_id": "a/b"}), "events[0].event_id 'a/b' may only contain"),
        (events({}, {"event_type": "add to cart"}), "events[1].event_type 'add to cart' may"),
        (events({"timestamp_ms": -1}), "events[0].timestamp_ms=-1 must be >= 0"),
        (events(*[{}] * 501), "501 events in one request; the limit is 500"),
    ],
)
def test_bad_event_fields_are_invalid_argument_naming_the_field(
    stack: Stack, events_: list[types_pb2.Event], detail: str
) -> None:
    request = recommender_pb2.RecordEventsRequest(user_id="bad-events-user", events=events_)
    with pytest.raises(grpc.RpcError) as info:
        record(stack.address("gateway"), request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert detail in info.value.details()  # type: ignore[attr-defined]
    assert stored(stack, "bad-events-user") == []


METHODS = [
    ("gateway", "/recserve.v1.RecommenderService/Recommend"),
    ("gateway", "/recserve.v1.RecommenderService/RecordEvents"),
    ("gateway", "/recserve.v1.RecommenderService/GetSimilarItems"),
    ("embedding_store", "/recserve.v1.EmbeddingStoreService/GetUserStates"),
    ("embedding_store", "/recserve.v1.EmbeddingStoreService/UpsertItemVectors"),
    ("candidates", "/recserve.v1.CandidateService/SearchCandidates"),
    ("ranking", "/recserve.v1.RankingService/RankCandidates"),
]


@pytest.mark.parametrize(("service", "method"), METHODS)
@pytest.mark.parametrize(
    "body", [b"\xff\xfe\xfd", b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x03\xc3\x28\x00"]
)
def test_undecodable_bodies_are_invalid_argument(
    stack: Stack, service: str, method: str, body: bytes
) -> None:
    with grpc.insecure_channel(stack.address(service)) as channel:
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as info:
            call(body, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_oversized_message_is_resource_exhausted(stack: Stack) -> None:
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        call = channel.unary_unary("/recserve.v1.RecommenderService/Recommend")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\x0a" + b"\x80\x80\x80\x03" + b"a" * (6 << 20), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def test_non_finite_vector_upsert_is_invalid_argument(stack: Stack) -> None:
    import numpy as np

    from recserve.v1 import embedding_store_pb2_grpc

    bundle = load_bundle(stack.newest_bundle() or Path(), parts=set())
    with grpc.insecure_channel(stack.address("embedding_store")) as channel:
        stub = embedding_store_pb2_grpc.EmbeddingStoreServiceStub(channel)
        for blob, message in (
            (np.full(bundle.dim, np.nan, dtype="<f4").tobytes(), "NaN"),
            (np.ones(bundle.dim + 1, dtype="<f4").tobytes(), "bytes"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                stub.UpsertItemVectors(
                    embedding_store_pb2.UpsertItemVectorsRequest(
                        vectors=[embedding_store_pb2.ItemVector(item_id="x", vector_f32=blob)]
                    ),
                    timeout=5,
                )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            assert message in info.value.details()  # type: ignore[attr-defined]
