"""Process entry: read config (exit 2 with the reason when invalid), set up logs, run the loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import uvloop

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
    except ConfigError as exc:
        print(f"{name}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(name, config.server.log_level, config.server.log_format)
    if config.server.event_loop == "uvloop":
        uvloop.run(main(config))
    else:
        asyncio.run(main(config))
