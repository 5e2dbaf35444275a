"""Service checks its methods against the proto descriptor when it is built, not per call."""

from __future__ import annotations

import re

import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import ranking_pb2, recommender_pb2

SERVICE = recommender_pb2.DESCRIPTOR.services_by_name["RecommenderService"]


async def handler(request: Message, context: RpcContext) -> Message:
    return recommender_pb2.RecommendResponse()


def test_methods_matching_the_descriptor_are_served() -> None:
    service = Service(
        SERVICE,
        [
            Method("Recommend", recommender_pb2.RecommendRequest, handler),
            Method("RecordEvents", recommender_pb2.RecordEventsRequest, handler),
        ],
    )
    assert service.full_name == "recserve.v1.RecommenderService"
    assert service.generic_handler() is not None


def test_an_unknown_method_name_fails_at_construction() -> None:
    with pytest.raises(
        ValueError, match=re.escape("recserve.v1.RecommenderService has no method 'Recomend'")
    ):
        Service(SERVICE, [Method("Recomend", recommender_pb2.RecommendRequest, handler)])


def test_a_request_type_other_than_the_descriptors_input_fails_at_construction() -> None:
    with pytest.raises(
        ValueError,
        match=r"recserve.v1.RecommenderService.Recommend takes recserve.v1.RecommendRequest, "
        r"not recserve.v1.RankCandidatesRequest",
    ):
        Service(SERVICE, [Method("Recommend", ranking_pb2.RankCandidatesRequest, handler)])


def test_a_method_listed_twice_fails_at_construction() -> None:
    method = Method("Recommend", recommender_pb2.RecommendRequest, handler)
    with pytest.raises(ValueError, match="Recommend is listed twice"):
        Service(SERVICE, [method, method])


def test_a_streaming_method_fails_at_construction() -> None:
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    with pytest.raises(ValueError, match=re.escape("grpc.health.v1.Health.Watch is streaming")):
        Service(health, [Method("Watch", health_pb2.HealthCheckRequest, handler)])
