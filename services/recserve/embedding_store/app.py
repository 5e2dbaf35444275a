"""Wiring: config → Redis → store → servicer → server."""

from __future__ import annotations

import asyncio

from recserve.embedding_store.config import EmbeddingStoreConfig
from recserve.embedding_store.servicer import EmbeddingStoreServicer
from recserve.embedding_store.store import EmbeddingStore
from recserve.model import RedisLayout
from recserve.runtime import redis_client
from recserve.runtime.bootstrap import run_service
from recserve.runtime.metrics import MODEL_INFO, MODEL_RELOADS
from recserve.runtime.server import ServiceRunner, serve


async def _main(config: EmbeddingStoreConfig) -> None:
    client = redis_client.connect(config.redis)
    store = EmbeddingStore(client, RedisLayout(), max_history=config.max_history)
    servicer = EmbeddingStoreServicer(store, max_batch_items=config.max_batch_items)

    async def on_start(runner: ServiceRunner) -> None:
        # Ready once Redis answers and a model is published; Redis state is the model here, so
        # following the active version only updates what the metrics report.
        current: str | None = None
        while True:
            try:
                meta = await store.meta("")
            except Exception:
                await asyncio.sleep(config.model_poll_interval_s)
                continue
            if meta.version != current:
                MODEL_INFO.clear()
                MODEL_INFO.labels("embedding_store", meta.version).set(1)
                MODEL_RELOADS.labels("embedding_store", "ok").inc()
                if current is None:
                    await runner.set_ready(True)
                current = meta.version
            await asyncio.sleep(config.model_poll_interval_s)

    await serve(config.server, [servicer.service()], on_start=on_start, on_stop=client.aclose)


def main() -> None:
    run_service("embedding_store", EmbeddingStoreConfig.from_env, _main)
