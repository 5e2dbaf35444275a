"""The public API against the real stack: parity with the offline pipeline, events, bad input."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import redis
from google.protobuf.message import Message

from recserve.client import RecommenderClient
from recserve.devstack import Stack
from recserve.model import RedisLayout, load_bundle, recommend
from recserve.v1 import (
    candidates_pb2,
    embedding_store_pb2,
    ranking_pb2,
    recommender_pb2,
    types_pb2,
)

LAYOUT = RedisLayout()


def offline(stack: Stack, user_id: str, k: int, recent: list[str] | None = None) -> list[str]:
    """What the offline pipeline computes for the user's stored state (same input as serving)."""
    bundle_path = stack.newest_bundle()
    assert bundle_path is not None
    bundle = load_bundle(bundle_path)
    client = redis.Redis.from_url(stack.redis_url)
    events = [e.decode() for e in client.lrange(LAYOUT.user_events_key(user_id), 0, -1)][::-1]
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
    ({"user_id": "1", "k": 0}, "k=0"),
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
