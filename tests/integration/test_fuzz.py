"""Bad-input campaign (`make fuzz`: 10 methods x 1,500 = 15,000; `make test`: 300 per method) of generated and malformed requests against every service.
Result must be: no INTERNAL/UNKNOWN, no dead process, invalid input named in the message."""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Callable

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recserve.devstack import SERVICES, Stack
from recserve.v1 import (
    candidates_pb2,
    catalog_pb2,
    embedding_store_pb2,
    ranking_pb2,
    recommender_pb2,
    types_pb2,
)

EXAMPLES_PER_METHOD = int(os.environ.get("RECSERVE_FUZZ_EXAMPLES", "300"))
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    # A random model_version that is not loaded.
    grpc.StatusCode.FAILED_PRECONDITION,
}

ids = st.text(max_size=40) | st.sampled_from(["1", "50", "181", "", "\x00", "é" * 100, "x" * 300])
id_lists = st.lists(ids, max_size=30) | st.lists(st.just("1"), min_size=400, max_size=1200)
ints = st.integers(min_value=-(2**31), max_value=2**31 - 1) | st.sampled_from(
    [0, 1, 10, 100, 101, 1000, -1]
)
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
vectors = st.lists(floats, max_size=80).map(
    lambda xs: struct.pack(f"<{len(xs)}f", *xs)
) | st.binary(max_size=300)
features = st.dictionaries(ids, ids, max_size=8)
filters = st.lists(
    st.builds(
        types_pb2.ItemFilter, feature=ids, any_of=st.lists(ids, max_size=5), exclude=st.booleans()
    ),
    max_size=4,
)
versions = st.sampled_from(["", "no-such-version"]) | st.text(max_size=10)
timeouts = st.sampled_from([None, 0.0, 0.0005, 0.005, 0.05])

REQUESTS: dict[tuple[str, str], st.SearchStrategy[Message]] = {
    ("gateway", "/recserve.v1.RecommenderService/Recommend"): st.builds(
        recommender_pb2.RecommendRequest,
        user_id=ids,
        recent_item_ids=id_lists,
        context=features,
        k=ints,
        exclude_item_ids=id_lists,
        filters=filters,
        include_stage_scores=st.booleans(),
    ),
    ("gateway", "/recserve.v1.RecommenderService/RecordEvents"): st.builds(
        recommender_pb2.RecordEventsRequest,
        user_id=ids,
        events=st.lists(
            st.builds(
                types_pb2.Event,
                item_id=ids,
                timestamp_ms=st.integers(-(2**63), 2**63 - 1),
                event_type=ids,
            ),
            max_size=20,
        ),
    ),
    ("gateway", "/recserve.v1.RecommenderService/GetSimilarItems"): st.builds(
        recommender_pb2.GetSimilarItemsRequest, item_id=ids, k=ints, exclude_item_ids=id_lists
    ),
    # The stack runs without auth, so writes reach validation and Redis.
    ("gateway", "/recserve.v1.CatalogService/UpsertItems"): st.builds(
        catalog_pb2.UpsertItemsRequest,
        items=st.lists(
            st.builds(
                catalog_pb2.CatalogItem,
                item_id=ids,
                attributes=features,
                numeric_attributes=st.dictionaries(ids, st.floats(), max_size=8),
                available=st.none() | st.booleans(),
                vector_source=st.integers(0, 3),
                updated_at_ms=st.integers(-(2**63), 2**63 - 1),
            ),
            max_size=20,
        )
        | st.lists(st.builds(catalog_pb2.CatalogItem, item_id=ids), min_size=1000, max_size=1100),
    ),
    ("gateway", "/recserve.v1.CatalogService/SetAvailability"): st.builds(
        catalog_pb2.SetAvailabilityRequest, item_ids=id_lists, available=st.booleans()
    ),
    ("gateway", "/recserve.v1.CatalogService/GetItems"): st.builds(
        catalog_pb2.GetItemsRequest, item_ids=id_lists
    ),
    ("embedding_store", "/recserve.v1.EmbeddingStoreService/GetUserStates"): st.builds(
        embedding_store_pb2.GetUserStatesRequest,
        model_version=versions,
        queries=st.lists(
            st.builds(embedding_store_pb2.UserStateQuery, user_id=ids, recent_item_ids=id_lists),
            max_size=5,
        ),
    ),
    ("embedding_store", "/recserve.v1.EmbeddingStoreService/UpsertItemVectors"): st.builds(
        embedding_store_pb2.UpsertItemVectorsRequest,
        # Never the active version's real name: the campaign must not change the model.
        model_version=st.just("no-such-version"),
        vectors=st.lists(
            st.builds(embedding_store_pb2.ItemVector, item_id=ids, vector_f32=vectors), max_size=5
        ),
    ),
    ("candidates", "/recserve.v1.CandidateService/SearchCandidates"): st.builds(
        candidates_pb2.SearchCandidatesRequest,
        model_version=versions,
        queries=st.lists(
            st.builds(
                candidates_pb2.CandidateQuery,
                query_vector_f32=vectors,
                item_id=ids,
                exclude_item_ids=id_lists,
                num_candidates=ints,
            ),
            max_size=4,
        ),
    ),
    ("ranking", "/recserve.v1.RankingService/RankCandidates"): st.builds(
        ranking_pb2.RankCandidatesRequest,
        model_version=versions,
        queries=st.lists(
            st.builds(
                ranking_pb2.RankQuery,
                features=features,
                item_indices=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 50), max_size=200),
                ann_scores=st.lists(floats, max_size=200),
                filters=filters,
                k=ints,
            ),
            max_size=3,
        ),
    ),
}

# Raw bodies: random bytes, truncated/corrupted valid messages, wrong wire types.
raw_bodies = st.binary(max_size=512) | st.sampled_from(
    [
        b"\x08",
        b"\x0a\xff\xff\xff\xff\xff",
        b"\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x0d\x00",
    ]
)


def check(
    outcome: Counter[str], call: Callable[..., bytes], body: bytes, timeout: float | None
) -> None:
    try:
        call(body, timeout=timeout)
        outcome["OK"] += 1
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        details = exc.details() or ""  # type: ignore[attr-defined]
        outcome[code.name] += 1
        assert code in ALLOWED, f"{code.name}: {details}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert len(details) > 10, "an invalid request must be told what is wrong"


@pytest.mark.parametrize(("service", "method"), list(REQUESTS))
def test_fuzz_method(stack: Stack, service: str, method: str) -> None:
    outcome: Counter[str] = Counter()
    with grpc.insecure_channel(stack.address(service)) as channel:
        call = channel.unary_unary(method)

        @settings(
            max_examples=EXAMPLES_PER_METHOD,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            message=REQUESTS[(service, method)],
            raw=raw_bodies,
            use_raw=st.booleans(),
            timeout=timeouts,
        )
        def run(message: Message, raw: bytes, use_raw: bool, timeout: float | None) -> None:
            body = raw if use_raw else message.SerializeToString()
            check(outcome, call, body, None if timeout is None else (timeout or 1e-9))

        run()
    assert sum(outcome.values()) >= EXAMPLES_PER_METHOD
    assert outcome["INVALID_ARGUMENT"] > 0
    for name in (*SERVICES, "redis"):
        pid = stack.pid(name)
        assert pid is not None and os.path.exists(f"/proc/{pid}"), f"{name} died"
    # Still serves real traffic afterwards.
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        reply = channel.unary_unary("/recserve.v1.RecommenderService/Recommend")(
            recommender_pb2.RecommendRequest(user_id="1", k=5).SerializeToString(), timeout=5
        )
    assert len(recommender_pb2.RecommendResponse.FromString(reply).items) == 5
