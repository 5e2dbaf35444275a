"""Wiring: config → catalog copy + bundle watcher → servicer (+ GetModelInfo) → server."""

from __future__ import annotations

from recserve.candidates.availability import UnavailableItems
from recserve.candidates.config import CandidatesConfig
from recserve.candidates.servicer import CandidateServicer
from recserve.candidates.side_index import ColdStartItems, follow_refinements
from recserve.catalog.view import follow
from recserve.model import RedisLayout
from recserve.runtime import redis_client
from recserve.runtime.bootstrap import run_service
from recserve.runtime.bundle_service import serve_bundles
from recserve.runtime.model_info import index_info


async def _main(config: CandidatesConfig) -> None:
    # Searches skip taken-down items, so the lists the gateway ranks keep their length.
    catalog = follow(config.redis)
    unavailable = UnavailableItems(catalog)
    # Catalog items the bundle has no vector for: searchable as soon as the copy has them.
    cold = ColdStartItems(catalog, redis_client.connect(config.redis), RedisLayout())

    async def start_catalog() -> None:
        await catalog.start()
        follow_refinements(cold)

    await serve_bundles(
        config.server,
        config.redis,
        component="candidates",
        bundle_dir=config.bundle_dir,
        parts={"index", "vectors"},
        poll_interval_s=config.model_poll_interval_s,
        make_services=lambda models: [
            CandidateServicer(
                models,
                unavailable,
                cold,
                max_candidates=config.max_candidates,
                max_queries=config.max_queries,
                max_exclude=config.max_exclude,
            ).service()
        ],
        describe=index_info,
        before_ready=start_catalog,
    )


def main() -> None:
    run_service("candidates", CandidatesConfig.from_env, _main)
