"""recserve.v1.ModelInfoService: which model a server serves (model metadata, as KServe v2 and
Triton expose it). Every server registers it next to health and reflection; each component
fills what it knows through its `Describe`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from recserve.model import Bundle, RedisLayout
from recserve.runtime.model_watch import ModelRegistry
from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import model_info_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ModelInfoService"]

Describe = Callable[[], Awaitable[pb.GetModelInfoResponse]]


def model_info_service(describe: Describe) -> Service:
    """GetModelInfo answered by `describe()`. No bearer token and no load shedding: like health
    and /metrics it is for operators and probes, and it reveals no user data."""

    async def get_model_info(
        request: pb.GetModelInfoRequest, context: RpcContext
    ) -> pb.GetModelInfoResponse:
        return await describe()

    return Service(SERVICE, [Method("GetModelInfo", pb.GetModelInfoRequest, get_model_info)])


def versions_info(
    component: str, newest_first: Sequence[str], loaded_at_s: float | None = None
) -> pb.GetModelInfoResponse:
    """The response's version fields: the newest is the active one."""
    return pb.GetModelInfoResponse(
        component=component,
        active_version=newest_first[0] if newest_first else "",
        loaded_versions=newest_first,
        loaded_at_ms=0 if loaded_at_s is None else round(loaded_at_s * 1000),
    )


def registry_info(component: str, registry: ModelRegistry[Any]) -> pb.GetModelInfoResponse:
    """The version fields of a service that loads its models into `registry`."""
    latest = registry.latest_version
    return versions_info(
        component,
        registry.versions()[::-1],
        None if latest is None else registry.loaded_at(latest),
    )


async def add_published_meta(
    response: pb.GetModelInfoResponse, client: aioredis.Redis, layout: RedisLayout
) -> pb.GetModelInfoResponse:
    """Fills catalog size and dimensions of the active version from its metadata in Redis (what
    `publish` wrote); leaves them 0 while Redis cannot answer, so the rest is still reported."""
    if response.active_version:
        try:
            count, dim = await client.hmget(
                layout.meta_key(response.active_version), ["count", "dim"]
            )
        except (redis.ConnectionError, redis.TimeoutError):
            return response
        response.catalog_size = int(count or 0)
        response.dimensions = int(dim or 0)
    return response


def bundle_describer(
    component: str,
    registry: ModelRegistry[Bundle],
    fill: Callable[[Bundle, pb.GetModelInfoResponse], None] | None = None,
) -> Describe:
    """Describe for a service serving bundles: versions from `registry`, catalog size and
    dimensions from the active bundle, then `fill(bundle, response)` for component details."""

    async def describe() -> pb.GetModelInfoResponse:
        response = registry_info(component, registry)
        if response.active_version:
            _, bundle = registry.get(response.active_version)
            response.catalog_size = len(bundle.item_ids)
            response.dimensions = bundle.dim
            if fill is not None:
                fill(bundle, response)
        return response

    return describe


def index_info(bundle: Bundle, response: pb.GetModelInfoResponse) -> None:
    """The candidates service's details: its ANN index and the recall measured at training
    time for the served index (manifest "ann.served": `k` and `recall@<k>`)."""
    config = bundle.index.config
    response.index_config.CopyFrom(
        pb.AnnIndexConfig(
            kind=config.kind,
            leaves=config.num_leaves,
            leaves_to_search=config.leaves_to_search,
            reorder=config.reorder_num_neighbors,
            spherical=config.spherical,
        )
    )
    served = bundle.manifest.get("ann", {}).get("served", {})
    k = served.get("k")
    recall = served.get(f"recall@{k}")
    if k is not None and recall is not None:
        response.recall_k = int(k)
        response.measured_recall = float(recall)


def ranker_info(bundle: Bundle, response: pb.GetModelInfoResponse) -> None:
    """The ranking service's details: the features the ranker was trained on and its size."""
    report = bundle.manifest.get("ranker", {})
    response.ranker.CopyFrom(
        pb.RankerInfo(
            user_features=report.get("user_features", []),
            item_features=report.get("item_features", []),
            weights=len(bundle.ranker.weights),
        )
    )
