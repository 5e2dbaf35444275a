"""TLS for clients, mTLS between the gateway and the backends, over real processes, with
certificates generated for the test run (chaos.pki)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chaos.bundles import read_catalog, versions_in
from chaos.pki import CertFiles, Pki
from recserve.client import RecommenderClient
from recserve.devstack import SERVICES, Stack, StackPorts
from recserve.v1 import candidates_pb2

TOKEN = "tls-test-token-7d1c"
BACKENDS = ("embedding_store", "candidates", "ranking")


def credentials(ca: Path, client: CertFiles | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


@pytest.fixture(scope="module")
def catalog(catalog_bundles: Path) -> tuple[list[str], list[str]]:
    return read_catalog(catalog_bundles / versions_in(catalog_bundles)[0])


@pytest.fixture(scope="module")
def tls_stack(
    tmp_path_factory: pytest.TempPathFactory, catalog_bundles: Path, pki: Pki
) -> Iterator[Stack]:
    """Backends: TLS + client certificates required (mTLS). Gateway: TLS for its clients, a
    bearer token, and its own client certificate towards the backends."""
    stack = Stack(
        tmp_path_factory.mktemp("tls-run"),
        catalog_bundles,
        StackPorts.free(),
        # Health checks present the gateway's certificate (the backends require one).
        channel_credentials=credentials(pki.ca, pki.client),
    )
    server_tls = {
        "RECSERVE_TLS_CERT_FILE": str(pki.server.cert),
        "RECSERVE_TLS_KEY_FILE": str(pki.server.key),
    }
    env = {
        **{name: {**server_tls, "RECSERVE_TLS_CA_FILE": str(pki.ca)} for name in BACKENDS},
        "gateway": {
            **server_tls,
            "RECSERVE_AUTH_TOKEN": TOKEN,
            "RECSERVE_BACKEND_TLS_CA_FILE": str(pki.ca),
            "RECSERVE_BACKEND_TLS_CERT_FILE": str(pki.client.cert),
            "RECSERVE_BACKEND_TLS_KEY_FILE": str(pki.client.key),
        },
    }
    try:
        stack.start_redis()
        stack.publish(versions_in(catalog_bundles)[0])
        for service in SERVICES:
            stack.start_service(
                service,
                {
                    "RECSERVE_LOG_LEVEL": "WARNING",
                    "RECSERVE_MODEL_POLL_INTERVAL_S": "0.2",
                    **env[service],
                },
            )
        stack.wait_ready()
    except Exception:
        stack.down()
        raise
    yield stack
    stack.down()


def test_recommend_over_tls_with_token_and_mtls_to_the_backends(
    tls_stack: Stack, pki: Pki, catalog: tuple[list[str], list[str]]
) -> None:
    with RecommenderClient(
        tls_stack.address("gateway"), token=TOKEN, tls_ca_file=str(pki.ca), timeout_s=5
    ) as client:
        result = client.recommend(catalog[0][0], k=10)
    # Not degraded: the gateway reached all three backends over mTLS.
    assert not result.degraded, result.degraded_detail
    assert len(result.items) == 10


def _recommend(channel: grpc.Channel, token: str | None = TOKEN) -> None:
    from recserve.v1 import recommender_pb2

    call = channel.unary_unary("/recserve.v1.RecommenderService/Recommend")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    call(
        recommender_pb2.RecommendRequest(user_id="1", k=5).SerializeToString(),
        timeout=5,
        metadata=metadata,
    )


def test_gateway_refuses_plaintext_and_untrusted_peers(tls_stack: Stack, pki: Pki) -> None:
    address = tls_stack.address("gateway")
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as plaintext:
        _recommend(channel)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    # A client that does not trust the CA that signed the server certificate.
    with (
        grpc.secure_channel(address, credentials(pki.rogue_ca)) as channel,
        pytest.raises(grpc.RpcError) as rogue,
    ):
        _recommend(channel)
    assert rogue.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    # TLS alone is not enough: the token is still required.
    with (
        grpc.secure_channel(address, credentials(pki.ca)) as channel,
        pytest.raises(grpc.RpcError) as anonymous,
    ):
        _recommend(channel, token=None)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_serve_only_clients_with_a_certificate_from_the_ca(
    tls_stack: Stack, pki: Pki, backend: str, catalog: tuple[list[str], list[str]]
) -> None:
    address = tls_stack.address(backend)
    refused: list[grpc.ChannelCredentials | None] = [
        None,  # plaintext
        credentials(pki.ca),  # TLS without a client certificate
        credentials(pki.ca, pki.rogue_client),  # a certificate from another CA
    ]
    for creds in refused:
        channel = (
            grpc.insecure_channel(address) if creds is None else grpc.secure_channel(address, creds)
        )
        with channel, pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="readiness"), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    with grpc.secure_channel(address, credentials(pki.ca, pki.client)) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="readiness"), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        if backend == "candidates":
            found = channel.unary_unary(
                "/recserve.v1.CandidateService/SearchCandidates",
                request_serializer=candidates_pb2.SearchCandidatesRequest.SerializeToString,
                response_deserializer=candidates_pb2.SearchCandidatesResponse.FromString,
            )(
                candidates_pb2.SearchCandidatesRequest(
                    queries=[candidates_pb2.CandidateQuery(item_id=catalog[1][0], num_candidates=5)]
                ),
                timeout=5,
            )
            assert len(found.results[0].item_ids) == 5
