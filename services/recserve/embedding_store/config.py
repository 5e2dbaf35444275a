from __future__ import annotations

from dataclasses import dataclass

from recserve.model.events import parse_event_types
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
    # Event types used as history besides the default type ""; None: the types the active
    # model version was trained on (its meta). Other types are stored but not used.
    history_event_types: frozenset[str] | None
    # How long an event id is remembered per user: a retry within it is not stored again.
    event_id_ttl_s: int

    @classmethod
    def from_env(cls, env: Env) -> EmbeddingStoreConfig:
        history_types = env.optional_string("HISTORY_EVENT_TYPES")
        return cls(
            server=ServerConfig.from_env(env),
            redis=RedisConfig.from_env(env),
            max_history=env.integer("MAX_HISTORY", 1000, min_value=1, max_value=100_000),
            max_batch_items=env.integer(
                "MAX_BATCH_ITEMS", 10_000, min_value=1, max_value=1_000_000
            ),
            model_poll_interval_s=env.number("MODEL_POLL_INTERVAL_S", 2.0, min_value=0.05),
            history_event_types=None
            if history_types is None
            else parse_event_types(history_types, "RECSERVE_HISTORY_EVENT_TYPES"),
            event_id_ttl_s=env.integer(
                "EVENT_ID_TTL_S", 86_400, min_value=1, max_value=30 * 86_400
            ),
        )
