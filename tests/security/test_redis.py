"""Redis AUTH and TLS: the runtime's client options against a real redis-server that accepts
only TLS connections with a client certificate and a password, and an embedding store process
that serves from it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from chaos.bundles import read_catalog, versions_in
from chaos.pki import Pki
from recserve.devstack import Stack, StackPorts
from recserve.devstack.stack import free_port, wait_for_redis, wait_serving
from recserve.model import load_bundle, publish_bundle
from recserve.runtime import redis_client
from recserve.runtime.config import ConfigError, Env, RedisConfig
from recserve.v1 import embedding_store_pb2

PASSWORD = "redis-test-password-51f0"


class TlsRedis:
    def __init__(self, directory: Path, pki: Pki):
        self.port = free_port()
        self.pki = pki
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(pki.server.cert),
                "--tls-key-file",
                str(pki.server.key),
                "--tls-ca-cert-file",
                str(pki.ca),
                "--tls-auth-clients",
                "yes",
                "--requirepass",
                PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        wait_for_redis(client)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url,
            password=PASSWORD,
            ssl_ca_certs=str(self.pki.ca),
            ssl_certfile=str(self.pki.client.cert),
            ssl_keyfile=str(self.pki.client.key),
            socket_timeout=5,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path_factory.mktemp("tls-redis"), pki)
    yield server
    server.stop()


def config(server: TlsRedis, **env: str) -> RedisConfig:
    values = {
        "RECSERVE_REDIS_URL": server.url,
        "RECSERVE_REDIS_PASSWORD": PASSWORD,
        "RECSERVE_REDIS_TLS_CA_FILE": str(server.pki.ca),
        "RECSERVE_REDIS_TLS_CERT_FILE": str(server.pki.client.cert),
        "RECSERVE_REDIS_TLS_KEY_FILE": str(server.pki.client.key),
    }
    values.update(env)
    return RedisConfig.from_env(Env({k: v for k, v in values.items() if v}))


async def ping(cfg: RedisConfig) -> bool:
    client = redis_client.connect(cfg)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


def test_runtime_client_connects_with_tls_client_certificate_and_password(
    tls_redis: TlsRedis,
) -> None:
    assert asyncio.run(ping(config(tls_redis)))
    # RECSERVE_REDIS_PASSWORD wins over a password in the URL (docs/contracts.md).
    url_with_wrong_password = tls_redis.url.replace("rediss://", "rediss://:wrong@")
    assert asyncio.run(ping(config(tls_redis, RECSERVE_REDIS_URL=url_with_wrong_password)))


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"RECSERVE_REDIS_PASSWORD": "wrong"}, redis.AuthenticationError),
        ({"RECSERVE_REDIS_PASSWORD": ""}, redis.AuthenticationError),  # NOAUTH
        (
            {"RECSERVE_REDIS_TLS_CERT_FILE": "", "RECSERVE_REDIS_TLS_KEY_FILE": ""},
            redis.ConnectionError,
        ),
    ],
    ids=["wrong-password", "no-password", "no-client-certificate"],
)
def test_redis_refuses_clients_without_credentials(
    tls_redis: TlsRedis, env: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        asyncio.run(ping(config(tls_redis, **env)))


def test_untrusted_redis_certificate_is_refused(tls_redis: TlsRedis) -> None:
    with pytest.raises(redis.ConnectionError):
        asyncio.run(ping(config(tls_redis, RECSERVE_REDIS_TLS_CA_FILE=str(tls_redis.pki.rogue_ca))))


def test_tls_options_need_a_rediss_url() -> None:
    with pytest.raises(ConfigError, match="rediss://"):
        RedisConfig.from_env(
            Env({"RECSERVE_REDIS_URL": "redis://h:1/0", "RECSERVE_REDIS_TLS_CA_FILE": "ca.pem"})
        )
    with pytest.raises(ConfigError, match="set together"):
        RedisConfig.from_env(
            Env({"RECSERVE_REDIS_URL": "rediss://h:1/0", "RECSERVE_REDIS_TLS_CERT_FILE": "c.pem"})
        )


def test_embedding_store_serves_from_a_tls_redis_with_auth(
    tls_redis: TlsRedis, catalog_bundles: Path, tmp_path: Path
) -> None:
    version = versions_in(catalog_bundles)[0]
    users, _ = read_catalog(catalog_bundles / version)
    bundle = load_bundle(catalog_bundles / version, parts={"vectors", "ranker"})
    publish_bundle(tls_redis.client(), bundle, user_histories={users[0]: bundle.item_ids[:3]})
    stack = Stack(tmp_path, catalog_bundles, StackPorts.free())
    stack.start_service(
        "embedding_store",
        {
            "RECSERVE_LOG_LEVEL": "WARNING",
            "RECSERVE_REDIS_URL": tls_redis.url,
            "RECSERVE_REDIS_PASSWORD": PASSWORD,
            "RECSERVE_REDIS_TLS_CA_FILE": str(tls_redis.pki.ca),
            "RECSERVE_REDIS_TLS_CERT_FILE": str(tls_redis.pki.client.cert),
            "RECSERVE_REDIS_TLS_KEY_FILE": str(tls_redis.pki.client.key),
        },
    )
    try:
        # SERVING means it read the published model from Redis over TLS with AUTH.
        wait_serving(stack.address("embedding_store"), 60)
        with grpc.insecure_channel(stack.address("embedding_store")) as channel:
            reply = channel.unary_unary(
                "/recserve.v1.EmbeddingStoreService/GetUserStates",
                request_serializer=embedding_store_pb2.GetUserStatesRequest.SerializeToString,
                response_deserializer=embedding_store_pb2.GetUserStatesResponse.FromString,
            )(
                embedding_store_pb2.GetUserStatesRequest(
                    queries=[embedding_store_pb2.UserStateQuery(user_id=users[0])]
                ),
                timeout=5,
            )
        assert reply.model_version == version
        assert list(reply.states[0].history_item_ids) == bundle.item_ids[:3]
        assert len(reply.states[0].query_vector_f32) == 4 * bundle.dim
    finally:
        stack.stop_process("embedding_store")
