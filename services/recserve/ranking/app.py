"""Wiring: config → bundle watcher → servicer (+ GetModelInfo) → server."""

from __future__ import annotations

from recserve.ranking.config import RankingConfig
from recserve.ranking.servicer import RankingServicer
from recserve.runtime.bootstrap import run_service
from recserve.runtime.bundle_service import serve_bundles
from recserve.runtime.model_info import ranker_info


async def _main(config: RankingConfig) -> None:
    await serve_bundles(
        config.server,
        config.redis,
        component="ranking",
        bundle_dir=config.bundle_dir,
        parts={"ranker"},
        poll_interval_s=config.model_poll_interval_s,
        make_services=lambda models: [
            RankingServicer(
                models,
                max_candidates=config.max_candidates,
                max_queries=config.max_queries,
                max_k=config.max_k,
            ).service()
        ],
        describe=ranker_info,
    )


def main() -> None:
    run_service("ranking", RankingConfig.from_env, _main)
