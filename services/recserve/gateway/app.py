"""Wiring: config → channels → batched backends → pipeline → servicer → server."""

from __future__ import annotations

import grpc

from recserve.catalog import CatalogStore
from recserve.catalog.view import follow
from recserve.gateway.backends import GrpcBackends, channel_options
from recserve.gateway.catalog_servicer import CatalogServicer
from recserve.gateway.config import GatewayConfig
from recserve.gateway.models import ModelTracker
from recserve.gateway.pipeline import Limits, Pipeline
from recserve.gateway.servicer import RecommenderServicer
from recserve.model import RedisLayout
from recserve.runtime import redis_client
from recserve.runtime.bootstrap import run_service
from recserve.runtime.model_info import add_published_meta, model_info_service, versions_info
from recserve.runtime.server import ServiceRunner, serve


def _channel(target: str, config: GatewayConfig) -> grpc.aio.Channel:
    options = channel_options(config.server.max_message_bytes)
    if config.backend_tls_ca_file:
        with open(config.backend_tls_ca_file, "rb") as f:
            root = f.read()
        key = cert = None
        if config.backend_tls_cert_file and config.backend_tls_key_file:
            # mTLS: backends that set RECSERVE_TLS_CA_FILE accept only certified clients.
            with open(config.backend_tls_key_file, "rb") as f:
                key = f.read()
            with open(config.backend_tls_cert_file, "rb") as f:
                cert = f.read()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root, private_key=key, certificate_chain=cert
        )
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)


async def _main(config: GatewayConfig) -> None:
    channels = [
        _channel(config.embedding_store_addr, config),
        _channel(config.candidates_addr, config),
        _channel(config.ranking_addr, config),
    ]
    backends = GrpcBackends(
        *channels,
        max_batch=config.max_batch,
        max_in_flight=config.max_in_flight_batches,
        max_queued=config.max_queued,
    )
    client = redis_client.connect(config.redis)
    models = ModelTracker(
        client, RedisLayout(), backends.probe, poll_interval_s=config.model_poll_interval_s
    )
    # Every answer is finalized against this copy of the live catalog (availability, attributes).
    catalog = follow(config.redis)
    pipeline = Pipeline(
        backends,
        models,
        Limits(
            max_k=config.max_k,
            max_recent_items=config.max_recent_items,
            max_exclude=config.max_exclude,
            max_events=config.max_events,
            num_candidates=config.num_candidates,
            reserve_s=min(0.01, config.request_budget_ms / 1000 / 10),
        ),
        catalog,
    )
    servicer = RecommenderServicer(
        pipeline,
        budget_s=config.request_budget_ms / 1000,
        auth_token=config.auth_token,
        max_in_flight=config.max_in_flight_requests,
    )

    async def on_start(runner: ServiceRunner) -> None:
        async def ready() -> None:
            await runner.set_ready(True)

        await catalog.start()
        await models.run(ready)

    async def on_stop() -> None:
        await catalog.stop()
        for channel in channels:
            await channel.close()
        await client.aclose()

    info = model_info_service(
        lambda: add_published_meta(
            versions_info("gateway", models.serving_versions()), client, RedisLayout()
        )
    )
    catalog_service = CatalogServicer(
        CatalogStore(client, limits=config.catalog),
        client,
        RedisLayout(),
        lambda: next(iter(models.serving_versions()), None),
        auth_token=config.auth_token,
        admin_token=config.admin_token,
    )
    await serve(
        config.server,
        [servicer.service(), catalog_service.service(), info],
        on_start=on_start,
        on_stop=on_stop,
    )


def main() -> None:
    run_service("gateway", GatewayConfig.from_env, _main)
