"""A stand-in for the kubernetes client's REST layer that answers from JSON fixtures.

Everything above the HTTP layer is the real kubernetes client: request serialization, URL
building, response deserialization into models, ApiException on non-2xx. The fixtures in
fixtures/ have the shape the API server returns for the chart's default render (namespace
`recserve`, release `recserve`), with status fields filled in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from kubernetes import client
from kubernetes.client import rest

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


def default_cluster(fake: FakeRest | None = None) -> FakeRest:
    """Routes for a healthy release `recserve` in namespace `recserve`."""
    fake = fake or FakeRest()
    metrics = fixture("pod-metrics.json")

    def pod_proxy(call: Call) -> tuple[int, Any]:
        m = re.match(r".*/pods/([^/:]+):(\d+)/proxy/metrics$", call.path)
        assert m, call.path
        pod = m.group(1)
        if pod in metrics:
            return 200, metrics[pod]
        return 503, {"kind": "Status", "code": 503, "message": "pod not running"}

    ns = "/namespaces/recserve"
    fake.on("GET", f"/apis/apps/v1{ns}/deployments", (200, fixture("deployments.json")))
    fake.on(
        "GET",
        f"/apis/autoscaling/v2{ns}/horizontalpodautoscalers",
        (200, fixture("hpas.json")),
    )
    fake.on("GET", f"/api/v1{ns}/pods", (200, fixture("pods.json")))
    fake.on("GET", f"/api/v1{ns}/pods/[^/]+/proxy/metrics", pod_proxy)
    fake.on("GET", f"/apis/batch/v1{ns}/cronjobs", (200, fixture("cronjobs.json")))
    return fake
