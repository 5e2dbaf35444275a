from __future__ import annotations

from dataclasses import dataclass, field

from recserve.catalog.types import CatalogLimits
from recserve.runtime.config import ConfigError, Env, RedisConfig, ServerConfig


@dataclass(frozen=True)
class GatewayConfig:
    server: ServerConfig
    redis: RedisConfig
    embedding_store_addr: str
    candidates_addr: str
    ranking_addr: str
    request_budget_ms: int
    max_k: int
    max_recent_items: int
    max_exclude: int
    max_events: int
    num_candidates: int
    max_batch: int
    max_in_flight_batches: int
    max_queued: int
    max_in_flight_requests: int
    auth_token: str | None
    backend_tls_ca_file: str | None
    model_poll_interval_s: float
    # Client certificate for mTLS to the backends (their RECSERVE_TLS_CA_FILE set).
    backend_tls_cert_file: str | None = None
    backend_tls_key_file: str | None = None
    # Bearer token for catalog writes (UpsertItems, SetAvailability); it also allows reads.
    admin_token: str | None = None
    catalog: CatalogLimits = field(default_factory=CatalogLimits)

    @classmethod
    def from_env(cls, env: Env) -> GatewayConfig:
        backend_cert = env.optional_string("BACKEND_TLS_CERT_FILE")
        backend_key = env.optional_string("BACKEND_TLS_KEY_FILE")
        if (backend_cert is None) != (backend_key is None):
            raise ConfigError(
                "RECSERVE_BACKEND_TLS_CERT_FILE and RECSERVE_BACKEND_TLS_KEY_FILE must be set together"
            )
        if backend_cert is not None and env.optional_string("BACKEND_TLS_CA_FILE") is None:
            raise ConfigError(
                "RECSERVE_BACKEND_TLS_CERT_FILE needs RECSERVE_BACKEND_TLS_CA_FILE (TLS to the backends)"
            )
        auth_token = env.optional_string("AUTH_TOKEN")
        admin_token = env.optional_string("ADMIN_TOKEN")
        if admin_token is not None and admin_token == auth_token:
            raise ConfigError(
                "RECSERVE_ADMIN_TOKEN must differ from RECSERVE_AUTH_TOKEN (it allows catalog writes)"
            )
        return cls(
            server=ServerConfig.from_env(env),
            redis=RedisConfig.from_env(env),
            embedding_store_addr=env.string("EMBEDDING_STORE_ADDR", "127.0.0.1:50052"),
            candidates_addr=env.string("CANDIDATES_ADDR", "127.0.0.1:50053"),
            ranking_addr=env.string("RANKING_ADDR", "127.0.0.1:50054"),
            request_budget_ms=env.integer("REQUEST_BUDGET_MS", 200, min_value=10, max_value=60_000),
            max_k=env.integer("MAX_K", 100, min_value=1, max_value=500),
            max_recent_items=env.integer("MAX_RECENT_ITEMS", 200, min_value=0, max_value=10_000),
            max_exclude=env.integer("MAX_EXCLUDE", 500, min_value=0, max_value=1000),
            max_events=env.integer("MAX_EVENTS", 500, min_value=1, max_value=10_000),
            num_candidates=env.integer("NUM_CANDIDATES", 0, min_value=0, max_value=500),
            max_batch=env.integer("MAX_BATCH", 64, min_value=1, max_value=256),
            max_in_flight_batches=env.integer(
                "MAX_IN_FLIGHT_BATCHES", 1, min_value=1, max_value=64
            ),
            max_queued=env.integer("MAX_QUEUED", 512, min_value=1, max_value=100_000),
            # Little's law: ~capacity x target latency. 64 = one full batch (a burst that fits in
            # a batch is never refused), drained within the budget at ~300 req/s per core. 1000
            # let overload queue far past the 200 ms budget (docs/reliability.md).
            max_in_flight_requests=env.integer(
                "MAX_IN_FLIGHT_REQUESTS", 64, min_value=0, max_value=1_000_000
            ),
            auth_token=auth_token,
            backend_tls_ca_file=env.optional_string("BACKEND_TLS_CA_FILE"),
            model_poll_interval_s=env.number("MODEL_POLL_INTERVAL_S", 2.0, min_value=0.05),
            backend_tls_cert_file=backend_cert,
            backend_tls_key_file=backend_key,
            admin_token=admin_token,
            catalog=CatalogLimits(
                max_items_per_call=env.integer(
                    "MAX_CATALOG_ITEMS_PER_CALL", 1000, min_value=1, max_value=10_000
                ),
                max_attributes_per_item=env.integer(
                    "MAX_CATALOG_ATTRIBUTES_PER_ITEM", 64, min_value=1, max_value=1000
                ),
            ),
        )
