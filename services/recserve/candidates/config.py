from __future__ import annotations

from dataclasses import dataclass

from recserve.runtime.config import Env, RedisConfig, ServerConfig


@dataclass(frozen=True)
class CandidatesConfig:
    server: ServerConfig
    redis: RedisConfig
    bundle_dir: str
    max_candidates: int
    max_queries: int
    max_exclude: int
    model_poll_interval_s: float

    @classmethod
    def from_env(cls, env: Env) -> CandidatesConfig:
        return cls(
            server=ServerConfig.from_env(env),
            redis=RedisConfig.from_env(env),
            bundle_dir=env.string("BUNDLE_DIR", "bundles"),
            # ScaNN 1.4.2 has crashed on k >= 2000 in reported issues; a search asks for
            # k = num_candidates + exclusions + 1 (the seed item), hence caps summing below it.
            max_candidates=env.integer("MAX_CANDIDATES", 500, min_value=1, max_value=1000),
            max_queries=env.integer("MAX_QUERIES", 256, min_value=1, max_value=10_000),
            max_exclude=env.integer("MAX_EXCLUDE", 998, min_value=0, max_value=998),
            model_poll_interval_s=env.number("MODEL_POLL_INTERVAL_S", 2.0, min_value=0.05),
        )
