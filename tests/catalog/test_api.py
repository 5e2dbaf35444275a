"""CatalogService through a real gateway process (real Redis, four services): admin token for
writes, read token for reads, all-or-nothing validation, seeding by publish, and the gateway's
CatalogView applying writes."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from recserve.devstack import Stack
from recserve.model.redis_layout import RedisLayout, active_version
from recserve.v1 import catalog_pb2 as pb
from recserve.v1 import catalog_pb2_grpc
from tests.integration.conftest import bundles, start_stack

__all__ = ["bundles"]  # the session fixture, shared with the integration tests

READ, ADMIN = "read-token", "admin-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, bundles: Path) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("run"),
        bundles,
        RECSERVE_AUTH_TOKEN=READ,
        RECSERVE_ADMIN_TOKEN=ADMIN,
        RECSERVE_MAX_CATALOG_ITEMS_PER_CALL="50",
    )
    yield stack
    stack.down()


@pytest.fixture(scope="module")
def catalog(stack: Stack) -> Iterator[catalog_pb2_grpc.CatalogServiceStub]:
    with grpc.insecure_channel(stack.address("gateway")) as channel:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="module")
def admin_redis(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.admin_redis_url, socket_timeout=5)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()  # type: ignore[no-any-return]


def trained_item(admin_redis: redis.Redis) -> str:
    version = active_version(admin_redis)
    assert version is not None
    return admin_redis.hkeys(RedisLayout().item_features_key(version))[0].decode()


def gateway_metric(stack: Stack, name: str) -> float:
    url = f"http://127.0.0.1:{stack.ports.metrics['gateway']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_writes_need_the_admin_token_reads_the_read_token(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    upsert = pb.UpsertItemsRequest(items=[pb.CatalogItem(item_id="auth-1")])
    availability = pb.SetAvailabilityRequest(item_ids=["auth-1"], available=False)
    get = pb.GetItemsRequest(item_ids=["auth-1"])
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    for metadata in ((), auth(READ), auth("wrong")):
        assert (
            code_of(lambda m=metadata: catalog.UpsertItems(upsert, metadata=m)) == unauthenticated
        )
        assert (
            code_of(lambda m=metadata: catalog.SetAvailability(availability, metadata=m))
            == unauthenticated
        )
    assert code_of(lambda: catalog.GetItems(get)) == unauthenticated
    assert catalog.GetItems(get, metadata=auth(READ)).unknown_item_ids == ["auth-1"]
    assert catalog.UpsertItems(upsert, metadata=auth(ADMIN)).created == 1
    assert catalog.SetAvailability(availability, metadata=auth(ADMIN)).changed == 1
    for token in (READ, ADMIN):
        (item,) = catalog.GetItems(get, metadata=auth(token)).items
        assert item.item_id == "auth-1" and item.available is False


def test_a_bad_item_rejects_the_whole_call_naming_the_field(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    request = pb.UpsertItemsRequest(
        items=[
            pb.CatalogItem(item_id="good-1", attributes={"genre": "Comedy"}),
            pb.CatalogItem(item_id="bad-1", numeric_attributes={"margin": float("nan")}),
        ]
    )
    with pytest.raises(grpc.RpcError) as caught:
        catalog.UpsertItems(request, metadata=auth(ADMIN))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'items[1].numeric_attributes["margin"] must be finite' in caught.value.details()
    got = catalog.GetItems(pb.GetItemsRequest(item_ids=["good-1", "bad-1"]), metadata=auth(READ))
    assert list(got.unknown_item_ids) == ["good-1", "bad-1"]

    too_many = pb.UpsertItemsRequest(items=[pb.CatalogItem(item_id=f"m{i}") for i in range(51)])
    with pytest.raises(grpc.RpcError) as caught:
        catalog.UpsertItems(too_many, metadata=auth(ADMIN))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "51 items in one request; the limit is 50" in caught.value.details()
    for bad in (pb.SetAvailabilityRequest(), pb.SetAvailabilityRequest(item_ids=[""])):
        assert (
            code_of(lambda b=bad: catalog.SetAvailability(b, metadata=auth(ADMIN)))
            == grpc.StatusCode.INVALID_ARGUMENT
        )


def test_publish_seeded_the_catalog_and_get_items_reports_vector_sources(
    stack: Stack, catalog: catalog_pb2_grpc.CatalogServiceStub, admin_redis: redis.Redis
) -> None:
    trained = trained_item(admin_redis)
    catalog.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.CatalogItem(item_id="brand-new", attributes={"x": "y"})]),
        metadata=auth(ADMIN),
    )
    got = catalog.GetItems(
        pb.GetItemsRequest(item_ids=[trained, "brand-new", "nobody"]), metadata=auth(READ)
    )
    by_id = {i.item_id: i for i in got.items}
    assert list(got.unknown_item_ids) == ["nobody"]
    assert by_id[trained].vector_source == pb.VECTOR_SOURCE_TRAINED
    assert by_id[trained].attributes  # seeded from the bundle's item features by publish
    assert by_id[trained].available and by_id[trained].updated_at_ms > 0
    # "x" is no attribute the model knows: no cold-start vector either.
    assert by_id["brand-new"].vector_source == pb.VECTOR_SOURCE_NONE

    # A publish seeds only missing items: the catalog's own values stay.
    catalog.UpsertItems(
        pb.UpsertItemsRequest(
            items=[pb.CatalogItem(item_id=trained, attributes={"genre": "Live"})]
        ),
        metadata=auth(ADMIN),
    )
    stack.publish()
    got = catalog.GetItems(pb.GetItemsRequest(item_ids=[trained, "brand-new"]), metadata=auth(READ))
    assert dict(got.items[0].attributes) == {"genre": "Live"}
    assert got.items[1].item_id == "brand-new"


def test_the_gateway_view_applies_writes(
    stack: Stack, catalog: catalog_pb2_grpc.CatalogServiceStub
) -> None:
    before = gateway_metric(stack, "recserve_catalog_available_items")
    lag_count = gateway_metric(stack, "recserve_catalog_propagation_seconds_count")
    catalog.SetAvailability(
        pb.SetAvailabilityRequest(item_ids=["view-1", "view-2"], available=False),
        metadata=auth(ADMIN),
    )
    deadline = time.monotonic() + 10
    while gateway_metric(stack, "recserve_catalog_propagation_seconds_count") < lag_count + 1:
        assert time.monotonic() < deadline, "the gateway's catalog view did not apply the write"
        time.sleep(0.02)
    assert gateway_metric(stack, "recserve_catalog_available_items") == before
    assert gateway_metric(stack, "recserve_catalog_items") >= before + 2
