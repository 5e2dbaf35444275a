"""GetModelInfo on every service of a running stack (real redis-server and four processes): each
fills what it knows, from the same bundle and the metadata `publish` wrote to Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis import Redis

from chaos.bundles import versions_in
from recserve.client import RecommenderClient
from recserve.client.errors import InvalidArgument
from recserve.devstack import Stack, StackPorts
from recserve.devstack.stack import SERVICES
from recserve.model import RedisLayout
from recserve.v1 import model_info_pb2 as pb
from recserve.v1.model_info_pb2_grpc import ModelInfoServiceStub


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, catalog_bundles: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("run"), catalog_bundles, StackPorts.free())
    try:
        stack.up(
            extra_env={"RECSERVE_MODEL_POLL_INTERVAL_S": "0.2", "RECSERVE_LOG_LEVEL": "WARNING"}
        )
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def manifest(stack: Stack, catalog_bundles: Path) -> dict[str, Any]:
    # The shared directory may hold several versions (other modules train more): `up`
    # publishes the newest.
    version = versions_in(catalog_bundles)[-1]
    loaded: dict[str, Any] = json.loads((catalog_bundles / version / "manifest.json").read_text())
    return loaded


def model_info(stack: Stack, service: str) -> pb.GetModelInfoResponse:
    with grpc.insecure_channel(stack.address(service)) as channel:
        return ModelInfoServiceStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=5)


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_reports_the_active_version_and_catalog(
    stack: Stack,
    manifest: dict[str, Any],
    service: str,
) -> None:
    info = model_info(stack, service)
    assert info.component == service
    assert info.active_version == manifest["version"]
    assert list(info.loaded_versions) == [manifest["version"]]
    assert info.catalog_size == manifest["item_count"]
    assert info.dimensions == manifest["dim"]


def test_services_that_load_the_model_say_when(stack: Stack, manifest: dict[str, Any]) -> None:
    # After `publish` recorded the version (its score: Unix seconds), before now.
    redis = Redis.from_url(stack.admin_redis_url)
    published_s = redis.zscore(RedisLayout().versions_key(), manifest["version"])
    redis.close()
    assert published_s is not None
    now_ms = time.time() * 1000
    for service in ("embedding_store", "candidates", "ranking"):
        info = model_info(stack, service)
        assert published_s * 1000 <= info.loaded_at_ms <= now_ms, service
    assert model_info(stack, "gateway").loaded_at_ms == 0


def test_candidates_report_the_index_and_its_measured_recall(
    stack: Stack,
    manifest: dict[str, Any],
) -> None:
    info = model_info(stack, "candidates")
    config, served = manifest["ann"]["config"], manifest["ann"]["served"]
    assert info.index_config == pb.AnnIndexConfig(
        kind=config["kind"],
        leaves=config["num_leaves"],
        leaves_to_search=config["leaves_to_search"],
        reorder=config["reorder_num_neighbors"],
        spherical=config["spherical"],
    )
    assert info.HasField("measured_recall")
    assert info.recall_k == served["k"]
    assert info.measured_recall == pytest.approx(served[f"recall@{served['k']}"])
    assert not info.HasField("ranker")


def test_ranking_reports_its_ranker(stack: Stack, manifest: dict[str, Any]) -> None:
    info = model_info(stack, "ranking")
    assert list(info.ranker.user_features) == manifest["ranker"]["user_features"]
    assert list(info.ranker.item_features) == manifest["ranker"]["item_features"]
    assert info.ranker.weights > 0
    assert not info.HasField("index_config") and not info.HasField("measured_recall")


def test_model_info_needs_no_token_and_is_listed_by_reflection(stack: Stack) -> None:
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for s in next(replies).list_services_response.service}
    assert "recserve.v1.ModelInfoService" in names


def test_a_bad_request_to_the_gateway_names_the_field(stack: Stack) -> None:
    with (
        RecommenderClient(stack.address("gateway"), timeout_s=5) as client,
        pytest.raises(InvalidArgument) as info,
    ):
        client.recommend(user_id="u", recent_item_ids=["x"] * 201)
    assert info.value.message == "201 recent_item_ids in one request; the limit is 200"
    assert [v.field for v in info.value.field_violations] == ["recent_item_ids"]
