"""Which model versions the gateway pins requests to, and their popular-items fallback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from recserve.model import RedisLayout
from recserve.model.redis_layout import text
from recserve.runtime.metrics import MODEL_INFO

log = logging.getLogger(__name__)


class ModelTracker:
    """Follows the active version in Redis. Switches to a new version only once the backends
    answer for it, and keeps the previous one for requests that meet a backend still behind."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: RedisLayout,
        probe: Callable[[str], Awaitable[bool]],
        *,
        poll_interval_s: float,
    ):
        self._redis = client
        self._layout = layout
        self._probe = probe
        self._poll_interval_s = poll_interval_s
        self._versions: list[str] = []  # newest first, at most two
        self._popular: dict[str, list[str]] = {}
        self._num_candidates: dict[str, int] = {}

    def serving_versions(self) -> list[str]:
        return list(self._versions)

    def popular(self, version: str) -> list[str]:
        return self._popular.get(version, [])

    def num_candidates(self, version: str) -> int:
        """Candidates ranked per request, as the version was trained and evaluated with."""
        return self._num_candidates.get(version, 100)

    async def check_once(self) -> bool:
        """True when a new version was adopted."""
        try:
            version = text(await self._redis.get(self._layout.active_key()))
            if version is None or version in self._versions[:1]:
                return False
            popular_json, num_candidates = await self._redis.hmget(
                self._layout.meta_key(version), ["popular", "num_candidates"]
            )
            if popular_json is None:
                return False
            if not await self._probe(version):
                return False
        except Exception as exc:
            # Keep serving the pinned versions; Redis or a backend being away is handled per request.
            log.warning("cannot check the active model version: %s", exc)
            return False
        self._popular[version] = [str(i) for i in json.loads(popular_json)]
        self._num_candidates[version] = int(num_candidates or 100)
        self._versions = [version, *self._versions][:2]
        for old in set(self._popular) - set(self._versions):
            del self._popular[old]
            self._num_candidates.pop(old, None)
        MODEL_INFO.clear()
        MODEL_INFO.labels(version).set(1)
        log.info("serving model version", extra={"version": version})
        return True

    async def run(self, on_first: Callable[[], Awaitable[None]]) -> None:
        while not self._versions:
            if await self.check_once():
                await on_first()
                break
            await asyncio.sleep(self._poll_interval_s)
        while True:
            await asyncio.sleep(self._poll_interval_s)
            await self.check_once()
