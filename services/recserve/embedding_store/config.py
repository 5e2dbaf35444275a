from __future__ import annotations

from dataclasses import dataclass

from recserve.runtime.config import Env, RedisConfig, ServerConfig


@dataclass(frozen=True)
class EmbeddingStoreConfig:
    server: ServerConfig
    redis: RedisConfig
    # Stored events per user; older ones are trimmed. Also bounds what is excluded as "seen".
    max_history: int
    # Upper bound on ids/vectors in one request.
    max_batch_items: int
    model_poll_interval_s: float

    @classmethod
    def from_env(cls, env: Env) -> EmbeddingStoreConfig:
        return cls(
            server=ServerConfig.from_env(env),
            redis=RedisConfig.from_env(env),
            max_history=env.integer("MAX_HISTORY", 1000, min_value=1, max_value=100_000),
            max_batch_items=env.integer(
                "MAX_BATCH_ITEMS", 10_000, min_value=1, max_value=1_000_000
            ),
            model_poll_interval_s=env.number("MODEL_POLL_INTERVAL_S", 2.0, min_value=0.05),
        )
