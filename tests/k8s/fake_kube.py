"""A stand-in for the kubernetes client's REST layer that answers from JSON fixtures.

Everything above the HTTP layer is the real kubernetes client: request serialization, URL
building, response deserialization into models, ApiException on non-2xx. The fixtures in
fixtures/ have the shape the API server returns for the chart's default render (namespace
`recserve`, release `recserve`), with status fields filled in.

The API server's port-forward (a websocket) is replaced by `FakePods.dial`: a TCP connection to
a real gRPC server per pod answering GetModelInfo with the version of that pod's /metrics
fixture; everything from the local listener to the gRPC call is the code under test.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import grpc
from kubernetes import client
from kubernetes.client import rest
from prometheus_client.parser import text_string_to_metric_families

from recserve.v1 import model_info_pb2 as pb
from recserve.v1.model_info_pb2_grpc import (
    ModelInfoServiceServicer,
    add_ModelInfoServiceServicer_to_server,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class _Urllib3Response:
    status: int
    reason: str
    data: bytes
    headers: dict[str, str]


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


Handler = Callable[[Call], tuple[int, Any]]


@dataclass
class FakeRest:
    """Route (method, path regex) -> handler returning (status, JSON body or text)."""

    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def on(self, method: str, pattern: str, handler: Handler | tuple[int, Any]) -> FakeRest:
        h: Handler = handler if callable(handler) else (lambda _c, r=handler: r)
        self.routes.append((method, re.compile(pattern + r"$"), h))
        return self

    def request(
        self, method, url, headers=None, body=None, post_params=None, _request_timeout=None
    ):
        u = urlparse(url)
        path = unquote(u.path)
        call = Call(method, path, parse_qs(u.query), body)
        self.calls.append(call)
        for m, pat, handler in self.routes:
            if m == method and pat.match(path):
                status, payload = handler(call)
                break
        else:
            status, payload = (
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                    "message": f"no fixture for {method} {path}",
                },
            )
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        reason = {200: "OK", 201: "Created", 404: "Not Found", 403: "Forbidden"}.get(status, "")
        return rest.RESTResponse(_Urllib3Response(status, reason, data, {"content-type": ctype}))

    def close(self) -> None:
        pass


def api_client(fake: FakeRest) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = "https://kube.test"
    api = client.ApiClient(cfg)
    api.rest_client = fake
    return api


def active_version(metrics_text: str) -> str:
    """The version a pod's /metrics fixture reports as active (recserve_model_info = 1)."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if family.name == "recserve_model_info" and sample.value == 1:
                return sample.labels["version"]
    raise ValueError("no active recserve_model_info series")


class _ModelInfo(ModelInfoServiceServicer):
    def __init__(self, response: pb.GetModelInfoResponse):
        self.response = response

    def GetModelInfo(  # noqa: N802 - the generated servicer's method name
        self, request: pb.GetModelInfoRequest, context: Any
    ) -> pb.GetModelInfoResponse:
        return self.response


class FakePods:
    """One real gRPC server per pod with a fixture, started on first dial; `dial` is a
    ClusterApis.dial. `versions` (pod -> active version) defaults to the /metrics fixture."""

    def __init__(self, versions: dict[str, str] | None = None):
        self.versions = versions or {
            pod: active_version(text) for pod, text in fixture("pod-metrics.json").items()
        }
        self.servers: dict[str, tuple[grpc.Server, int]] = {}
        self.dialed: list[tuple[str, str, int]] = []

    def dial(self, namespace: str, pod: str, port: int) -> socket.socket:
        self.dialed.append((namespace, pod, port))
        if pod not in self.versions:
            raise ConnectionRefusedError(f"pod {pod} has no port {port}")
        if pod not in self.servers:
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            component = pod.removeprefix("recserve-").rsplit("-", 2)[0].replace("-", "_")
            version = self.versions[pod]
            add_ModelInfoServiceServicer_to_server(
                _ModelInfo(
                    pb.GetModelInfoResponse(
                        component=component, active_version=version, loaded_versions=[version]
                    )
                ),
                server,
            )
            self.servers[pod] = (server, server.add_insecure_port("127.0.0.1:0"))
            server.start()
        return socket.create_connection(("127.0.0.1", self.servers[pod][1]))

    def close(self) -> None:
        for server, _ in self.servers.values():
            server.stop(0)


def default_cluster(fake: FakeRest | None = None) -> FakeRest:
    """Routes for a healthy release `recserve` in namespace `recserve`."""
    fake = fake or FakeRest()
    ns = "/namespaces/recserve"
    fake.on("GET", f"/apis/apps/v1{ns}/deployments", (200, fixture("deployments.json")))
    fake.on(
        "GET",
        f"/apis/autoscaling/v2{ns}/horizontalpodautoscalers",
        (200, fixture("hpas.json")),
    )
    fake.on("GET", f"/api/v1{ns}/pods", (200, fixture("pods.json")))
    fake.on("GET", f"/apis/batch/v1{ns}/cronjobs", (200, fixture("cronjobs.json")))
    return fake
