"""Wiring: config → Redis → store → servicer (+ GetModelInfo) → server."""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from recserve.embedding_store.config import EmbeddingStoreConfig
from recserve.embedding_store.servicer import EmbeddingStoreServicer
from recserve.embedding_store.store import EmbeddingStore, VersionMeta
from recserve.model import RedisLayout
from recserve.model.redis_layout import text
from recserve.runtime import redis_client
from recserve.runtime.bootstrap import run_service
from recserve.runtime.model_info import add_published_meta, model_info_service, registry_info
from recserve.runtime.model_watch import ModelRegistry, ModelWatcher
from recserve.runtime.server import ServiceRunner, serve
from recserve.v1 import model_info_pb2

# Items whose vectors are read back to accept a version.
VERIFY_SAMPLE = 8


async def verify_version(
    client: aioredis.Redis, store: EmbeddingStore, layout: RedisLayout, version: str
) -> VersionMeta:
    """The version's metadata, once it and a random sample of its vectors are in Redis with
    the published dimension; raises otherwise."""
    meta = await store.meta(version)
    # HRANDFIELD with a count replies with a list of field names.
    fields = cast(
        "list[bytes]", await client.hrandfield(layout.item_features_key(version), VERIFY_SAMPLE)
    )
    sample = [text(f) for f in fields]
    if not sample:
        raise RuntimeError(f"model version {version!r} has no items in Redis")
    # get_vectors refuses a vector of the wrong length.
    _, missing = await store.get_vectors(meta, sample)
    if missing:
        raise RuntimeError(f"model version {version!r} has no vectors in Redis for {missing}")
    return meta


async def _main(config: EmbeddingStoreConfig) -> None:
    client = redis_client.connect(config.redis)
    layout = RedisLayout()
    store = EmbeddingStore(
        client,
        layout,
        max_history=config.max_history,
        history_event_types=config.history_event_types,
        event_id_ttl_s=config.event_id_ttl_s,
    )
    servicer = EmbeddingStoreServicer(store, max_batch_items=config.max_batch_items)
    registry: ModelRegistry[VersionMeta] = ModelRegistry(keep=1)

    async def describe() -> model_info_pb2.GetModelInfoResponse:
        return await add_published_meta(registry_info("embedding_store", registry), client, layout)

    async def on_start(runner: ServiceRunner) -> None:
        # Redis state is the model here: requests read it directly, so following the active
        # version verifies it is servable, reports it in the metrics and sets readiness.
        watcher: ModelWatcher[VersionMeta] = ModelWatcher(
            registry,
            store.active_version,
            lambda version: verify_version(client, store, layout, version),
            poll_interval_s=config.model_poll_interval_s,
            on_loaded=lambda _: runner.set_ready(True),
        )
        await watcher.run()

    services = [servicer.service(), model_info_service(describe)]
    await serve(config.server, services, on_start=on_start, on_stop=client.aclose)


def main() -> None:
    run_service("embedding_store", EmbeddingStoreConfig.from_env, _main)
