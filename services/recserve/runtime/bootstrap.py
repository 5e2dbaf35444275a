"""Process entry: read config (exit 2 with the reason when invalid), set up logs and tracing, limit
BLAS to one thread, run the loop, flush traces on exit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import uvloop
from threadpoolctl import threadpool_limits

from recserve.runtime import tracing
from recserve.runtime.config import ConfigError, Env, ServerConfig
from recserve.runtime.logging import configure_logging


class HasServerConfig(Protocol):
    @property
    def server(self) -> ServerConfig: ...


ConfigT = TypeVar("ConfigT", bound=HasServerConfig)


def run_service(
    name: str,
    load_config: Callable[[Env], ConfigT],
    main: Callable[[ConfigT], Coroutine[Any, Any, None]],
) -> None:
    try:
        config = load_config(Env())
        exporters = tracing.exporter_names()
    except ConfigError as exc:
        print(f"{name}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(name, config.server.log_level, config.server.log_format)
    # Before `main` builds the services: they add the tracing layer only if tracing is on.
    provider = tracing.configure(service_name(name), exporters)
    # Concurrency comes from serving many requests at once: a BLAS pool per numpy call only
    # oversubscribes the pod's cores (a 10k-item side-index search took 16 ms threaded, 0.5 ms
    # single-threaded).
    threadpool_limits(1)
    try:
        if config.server.event_loop == "uvloop":
            uvloop.run(main(config))
        else:
            asyncio.run(main(config))
    finally:
        if provider is not None:
            # Exports the spans still queued in the batch processor.
            provider.shutdown()


def service_name(name: str) -> str:
    """The default OTEL_SERVICE_NAME of a service: recserve-gateway, recserve-embedding-store..."""
    return "recserve-" + name.replace("_", "-")
