"""Hot reload: follow the active model version in Redis and keep the newest versions loaded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from recserve.runtime import errors
from recserve.runtime.metrics import MODEL_INFO, MODEL_LOAD_FAILING, MODEL_RELOADS

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT")


class ModelRegistry(Generic[ModelT]):
    """Loaded models by version. Keeps `keep` versions so requests pinned to the previous
    version still succeed while the fleet switches over."""

    def __init__(self, keep: int = 2):
        self._keep = keep
        self._models: OrderedDict[str, ModelT] = OrderedDict()
        self._loaded_at: dict[str, float] = {}

    @property
    def latest_version(self) -> str | None:
        return next(reversed(self._models), None)

    def versions(self) -> list[str]:
        """Oldest first."""
        return list(self._models)

    def loaded_at(self, version: str) -> float:
        """Wall-clock time (Unix seconds) when `version` was added; KeyError if not loaded."""
        return self._loaded_at[version]

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
        self._loaded_at[version] = time.time()
        MODEL_INFO.labels(version).set(1)
        while len(self._models) > self._keep:
            old, _ = self._models.popitem(last=False)
            del self._loaded_at[old]
            MODEL_INFO.remove(old)


@dataclass(frozen=True)
class _Failure:
    version: str
    attempts: int
    retry_at: float  # clock() time before which the version is not tried again


class ModelWatcher(Generic[ModelT]):
    """Polls `fetch_active()`; when it names a version not loaded, awaits `load(version)` (which
    must not block the event loop: run blocking loads with asyncio.to_thread).

    A failed load is retried with exponential backoff: after the first failure wait
    `poll_interval_s`, then double each time up to `max_backoff_s`. The backoff resets when a
    load succeeds or the active version changes. `recserve_model_load_failing` is 1 while the
    active version cannot be loaded.
    """

    def __init__(
        self,
        registry: ModelRegistry[ModelT],
        fetch_active: Callable[[], Awaitable[str | None]],
        load: Callable[[str], Awaitable[ModelT]],
        *,
        poll_interval_s: float,
        max_backoff_s: float = 60.0,
        on_loaded: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._registry = registry
        self._fetch_active = fetch_active
        self._load = load
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._on_loaded = on_loaded
        self._clock = clock
        self._failure: _Failure | None = None
        self._fetch_failing = False

    @property
    def retry_at(self) -> float | None:
        """clock() time of the next attempt at the failing active version, or None."""
        return None if self._failure is None else self._failure.retry_at

    def _backoff_s(self, attempts: int) -> float:
        """Wait after `attempts` consecutive failed loads of one version."""
        return min(self._poll_interval_s * 2 ** (attempts - 1), self._max_backoff_s)

    async def check_once(self) -> None:
        try:
            version = await self._fetch_active()
        except Exception as exc:
            # Keep serving what is loaded; Redis being away is not a reason to drop the model.
            # One line per outage, not per poll.
            if not self._fetch_failing:
                log.warning("cannot read active model version (retrying quietly): %s", exc)
                self._fetch_failing = True
            return
        if self._fetch_failing:
            log.info("active model version readable again")
            self._fetch_failing = False
        if version is None:
            return
        if version in self._registry.versions():
            self._set_failure(None)
            return
        failure = self._failure if self._failure and self._failure.version == version else None
        if failure is not None and self._clock() < failure.retry_at:
            return
        attempt = 1 if failure is None else failure.attempts + 1
        try:
            model = await self._load(version)
        except Exception as exc:
            MODEL_RELOADS.labels("error").inc()
            delay = self._backoff_s(attempt)
            self._set_failure(_Failure(version, attempt, self._clock() + delay))
            log.error(
                "cannot load model version %s (attempt %d, next in %.1f s): %s",
                version,
                attempt,
                delay,
                exc,
                extra={"version": version, "attempt": attempt},
            )
            return
        self._registry.add(version, model)
        self._set_failure(None)
        MODEL_RELOADS.labels("ok").inc()
        log.info("model loaded", extra={"version": version, "attempt": attempt})
        if self._on_loaded is not None:
            await self._on_loaded(version)

    def _set_failure(self, failure: _Failure | None) -> None:
        self._failure = failure
        MODEL_LOAD_FAILING.set(0 if failure is None else 1)

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._poll_interval_s)
