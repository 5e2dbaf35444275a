"""Wiring: config → Redis → store → servicer → server."""

from __future__ import annotations

import asyncio

from recserve.embedding_store.config import EmbeddingStoreConfig
from recserve.embedding_store.servicer import EmbeddingStoreServicer
from recserve.embedding_store.store import EmbeddingStore
from recserve.model import RedisLayout
from recserve.runtime import redis_client
from recserve.runtime.bootstrap import run_service
from recserve.runtime.server import ServiceRunner, serve


async def _main(config: EmbeddingStoreConfig) -> None:
    client = redis_client.connect(config.redis)
    store = EmbeddingStore(client, RedisLayout(), max_history=config.max_history)
    servicer = EmbeddingStoreServicer(store, max_batch_items=config.max_batch_items)

    async def on_start(runner: ServiceRunner) -> None:
        # Ready once Redis answers and a model is published; Redis state is the model here.
        while True:
            try:
                await store.meta("")
                await runner.set_ready(True)
                return
            except Exception:
                await asyncio.sleep(config.model_poll_interval_s)

    await serve(config.server, [servicer.service()], on_start=on_start, on_stop=client.aclose)


def main() -> None:
    run_service("embedding_store", EmbeddingStoreConfig.from_env, _main)
