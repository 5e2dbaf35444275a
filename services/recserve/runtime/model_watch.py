"""Hot reload: follow the active model version in Redis and keep the newest versions loaded."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from recserve.runtime import errors
from recserve.runtime.metrics import MODEL_INFO, MODEL_RELOADS

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT")


class ModelRegistry(Generic[ModelT]):
    """Loaded models by version. Keeps `keep` versions so requests pinned to the previous
    version still succeed while the fleet switches over."""

    def __init__(self, component: str, keep: int = 2):
        self._component = component
        self._keep = keep
        self._models: OrderedDict[str, ModelT] = OrderedDict()

    @property
    def latest_version(self) -> str | None:
        return next(reversed(self._models), None)

    def versions(self) -> list[str]:
        return list(self._models)

    def get(self, version: str) -> tuple[str, ModelT]:
        """Model for `version`, or the newest when version is empty."""
        if not version:
            latest = self.latest_version
            if latest is None:
                raise errors.Unavailable("no model loaded yet")
            return latest, self._models[latest]
        model = self._models.get(version)
        if model is None:
            raise errors.FailedPrecondition(
                f"model version {version!r} is not loaded here (loaded: {', '.join(self._models) or 'none'})"
            )
        return version, model

    def add(self, version: str, model: ModelT) -> None:
        self._models[version] = model
        self._models.move_to_end(version)
        MODEL_INFO.labels(self._component, version).set(1)
        while len(self._models) > self._keep:
            old, _ = self._models.popitem(last=False)
            MODEL_INFO.remove(self._component, old)


class ModelWatcher(Generic[ModelT]):
    """Polls `fetch_active()`; when it changes, loads the version off the event loop."""

    def __init__(
        self,
        registry: ModelRegistry[ModelT],
        fetch_active: Callable[[], Awaitable[str | None]],
        load: Callable[[str], ModelT],
        *,
        component: str,
        poll_interval_s: float,
        on_loaded: Callable[[str], Awaitable[None]] | None = None,
    ):
        self._registry = registry
        self._fetch_active = fetch_active
        self._load = load
        self._component = component
        self._poll_interval_s = poll_interval_s
        self._on_loaded = on_loaded
        self._failed: set[str] = set()

    async def check_once(self) -> None:
        try:
            version = await self._fetch_active()
        except Exception as exc:
            # Keep serving what is loaded; Redis being away is not a reason to drop the model.
            log.warning("cannot read active model version: %s", exc)
            return
        if version is None or version in self._registry.versions() or version in self._failed:
            return
        try:
            model = await asyncio.to_thread(self._load, version)
        except Exception as exc:
            MODEL_RELOADS.labels(self._component, "error").inc()
            self._failed.add(version)
            log.error("cannot load model version %s: %s", version, exc)
            return
        self._registry.add(version, model)
        MODEL_RELOADS.labels(self._component, "ok").inc()
        log.info("model loaded", extra={"version": version})
        if self._on_loaded is not None:
            await self._on_loaded(version)

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._poll_interval_s)
