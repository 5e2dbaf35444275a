"""The chart's `tracing:` values become OTEL_* variables on every service container, and an
egress rule to the collector (offline render, Helm v4 SDK)."""

from __future__ import annotations

from typing import Any

import pytest

from tools import chart

SERVICES = {"gateway", "embedding_store", "candidates", "ranking"}


def containers(objs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """recserve.io/service -> the env of its Deployment's container."""
    out = {}
    for o in objs:
        if o["kind"] == "Deployment":
            pod = o["spec"]["template"]
            [container] = pod["spec"]["containers"]
            env = {e["name"]: e.get("value") for e in container["env"]}
            out[pod["metadata"]["labels"]["recserve.io/service"]] = env
    return out


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return chart.objects(chart.render_scenario("production"))


def test_tracing_is_off_by_default() -> None:
    envs = containers(chart.objects(chart.render_scenario("defaults")))
    assert set(envs) == SERVICES
    for env in envs.values():
        assert not [name for name in env if name.startswith("OTEL_")]


def test_every_service_container_gets_the_otel_variables(
    production: list[dict[str, Any]],
) -> None:
    envs = containers(production)
    assert set(envs) == SERVICES
    for service, env in envs.items():
        otel = {k: v for k, v in env.items() if k.startswith("OTEL_")}
        assert otel == {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_SERVICE_NAME": "recserve-" + service.replace("_", "-"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring:4317",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
            "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
        }


def test_every_service_may_reach_the_collector(production: list[dict[str, Any]]) -> None:
    policies = {
        o["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component"): o
        for o in production
        if o["kind"] == "NetworkPolicy"
    }
    for service in SERVICES:
        egress = policies[service.replace("_", "-")]["spec"]["egress"]
        to_collector = [
            rule for rule in egress if rule["ports"] == [{"port": 4317, "protocol": "TCP"}]
        ]
        assert len(to_collector) == 1, service
        [peer] = to_collector[0]["to"]
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "otel-collector"}


@pytest.mark.parametrize(
    "bad",
    [
        {"tracing": {"otel": {"OTEL_SERVICE_NAME": "one-for-all"}}},
        {"tracing": {"otel": {"JAVA_OPTS": "-x"}}},
        {"tracing": {"exporter": "zipkin"}},
        {"tracing": {"samplerArg": "1.5"}},
    ],
)
def test_schema_refuses_bad_tracing_values(bad: dict[str, Any]) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmError):
        helm_python.Chart.load(str(chart.CHART_DIR)).validate_schema(bad)


def test_schema_accepts_extra_otel_variables() -> None:
    import helm_python

    values = {"tracing": {"exporter": "otlp", "otel": {"OTEL_BSP_MAX_QUEUE_SIZE": "4096"}}}
    helm_python.Chart.load(str(chart.CHART_DIR)).validate_schema(values)
