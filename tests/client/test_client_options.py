"""The recommended channel setup, as data: what the service config retries, and what it must not
contain."""

from __future__ import annotations

import json

import pytest

from recserve.client import TARGET_ENV, ClientOptions, RecommenderClient, service_config


def test_reads_are_retried_on_unavailable_only_within_a_budget() -> None:
    config = service_config()
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": "readiness"}
    [method_config] = config["methodConfig"]
    assert {n["method"] for n in method_config["name"]} == {"Recommend", "GetSimilarItems"}
    policy = method_config["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert 2 <= policy["maxAttempts"] <= 5
    assert config["retryThrottling"]["maxTokens"] > 0


def test_no_timeout_in_the_service_config() -> None:
    """methodConfig.timeout below ~1.5 s fails every call (a grpc bug): per-call deadlines."""
    assert "timeout" not in json.dumps(service_config())


def test_without_retryable_methods_only_balancing_and_health_checking() -> None:
    assert set(service_config(retryable=())) == {"loadBalancingConfig", "healthCheckConfig"}


def test_attempts_are_bounded() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        service_config(max_attempts=6)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="go together"):
        ClientOptions("t", tls_cert_file="c.pem")
    with pytest.raises(ValueError, match="timeout_s"):
        ClientOptions("t", timeout_s=0)
    assert ClientOptions("t").credentials() is None
    assert ClientOptions("t", tls=True).credentials() is not None
    assert ClientOptions("t", token="abc").metadata() == (("authorization", "Bearer abc"),)
    assert ClientOptions("t", timeout_s=3).timeout(None) == 3
    assert ClientOptions("t", timeout_s=3).timeout(0.5) == 0.5


def test_extra_channel_options_come_last() -> None:
    args = ClientOptions(
        "t", max_message_bytes=1234, channel_options=[("grpc.x", 1)]
    ).channel_args()
    assert ("grpc.max_receive_message_length", 1234) in args
    assert args[-1] == ("grpc.x", 1)


def test_target_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_ENV, "dns:///gateway.example:50051")
    with RecommenderClient() as client:
        assert client.options.target == "dns:///gateway.example:50051"
    monkeypatch.delenv(TARGET_ENV)
    with pytest.raises(ValueError, match=TARGET_ENV):
        RecommenderClient()
