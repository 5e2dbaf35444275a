"""Wiring: config → bundle watcher → servicer → server."""

from __future__ import annotations

from recserve.candidates.config import CandidatesConfig
from recserve.candidates.servicer import CandidateServicer
from recserve.runtime.bootstrap import run_service
from recserve.runtime.bundle_service import serve_bundles


async def _main(config: CandidatesConfig) -> None:
    await serve_bundles(
        config.server,
        config.redis,
        bundle_dir=config.bundle_dir,
        parts={"index", "vectors"},
        poll_interval_s=config.model_poll_interval_s,
        make_services=lambda models: [
            CandidateServicer(
                models,
                max_candidates=config.max_candidates,
                max_queries=config.max_queries,
                max_exclude=config.max_exclude,
            ).service()
        ],
    )


def main() -> None:
    run_service("candidates", CandidatesConfig.from_env, _main)
