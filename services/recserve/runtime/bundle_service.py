"""Serving loop for services backed by bundle files (candidates, ranking): follow the active
version in Redis, load `<bundle_dir>/<version>` off the event loop, ready after the first load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from recserve.model import Bundle, RedisLayout, load_bundle
from recserve.model.redis_layout import text
from recserve.runtime import redis_client
from recserve.runtime.config import RedisConfig, ServerConfig
from recserve.runtime.model_info import bundle_describer, model_info_service
from recserve.runtime.model_watch import ModelRegistry, ModelWatcher
from recserve.runtime.server import Service, ServiceRunner, serve
from recserve.v1 import model_info_pb2


def bundle_loader(bundle_dir: str, parts: Collection[str]) -> Callable[[str], Bundle]:
    def load(version: str) -> Bundle:
        bundle = load_bundle(Path(bundle_dir) / version, parts=set(parts))
        if "index" in parts:
            # The first ScaNN query after load is ~10x slower; pay it before taking traffic.
            bundle.index.search_batched(bundle.input_vectors[:1], 10)
        return bundle

    return load


async def serve_bundles(
    server: ServerConfig,
    redis: RedisConfig,
    *,
    component: str,
    bundle_dir: str,
    parts: Collection[str],
    poll_interval_s: float,
    make_services: Callable[[ModelRegistry[Bundle]], list[Service]],
    describe: Callable[[Bundle, model_info_pb2.GetModelInfoResponse], None] | None = None,
    before_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serves `make_services(registry)` and GetModelInfo for `component` (`describe` adds the
    component's details of the active bundle). `before_ready` (e.g. loading the catalog copy)
    is awaited before the first model load, so readiness waits for it too."""
    client = redis_client.connect(redis)
    layout = RedisLayout()
    registry: ModelRegistry[Bundle] = ModelRegistry()

    async def fetch_active() -> str | None:
        return text(await client.get(layout.active_key()))

    load = bundle_loader(bundle_dir, parts)

    async def on_start(runner: ServiceRunner) -> None:
        if before_ready is not None:
            await before_ready()
        watcher = ModelWatcher(
            registry,
            fetch_active,
            lambda version: asyncio.to_thread(load, version),
            poll_interval_s=poll_interval_s,
            on_loaded=lambda _: runner.set_ready(True),
        )
        await watcher.run()

    info = model_info_service(bundle_describer(component, registry, describe))
    await serve(server, [*make_services(registry), info], on_start=on_start, on_stop=client.aclose)
