"""Locust scenario for the public gRPC API: realistic sessions, headless, fails on any error.

Each simulated user repeatedly picks a MovieLens user and either runs a session
(RecordEvents with a few views, then Recommend with them as recent items) or asks for
item-to-item neighbours (GetSimilarItems). Locust's closed-loop users are for realism and
soak; the capacity numbers come from loadtest.openloop.

    RECSERVE_LOCUST_USERS=20 RECSERVE_LOCUST_RATE=100 RECSERVE_LOCUST_DURATION=60s \\
        .venv/bin/locust -f loadtest/locustfile.py
Target: --host / $RECSERVE_TARGET (host:port), else run/stack.json from `make up`.
Exit code 1 if any call failed (Locust's --exit-code-on-error default).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# grpc must be patched for gevent before any channel exists: Locust users are greenlets.
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import grpc  # noqa: E402
from locust import User, constant_throughput, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

# Locust puts only this file's folder on sys.path; the loadtest package lives one level up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest import stack  # noqa: E402
from loadtest.workload import RequestFactory, load_catalog  # noqa: E402
from recserve.v1 import recommender_pb2_grpc  # noqa: E402

USERS = int(os.environ.get("RECSERVE_LOCUST_USERS", "10"))
RATE = float(os.environ.get("RECSERVE_LOCUST_RATE", "50"))  # total tasks/s over all users
CATALOG = load_catalog(
    Path(os.environ.get("RECSERVE_DATA_DIR", "data")),
    Path(os.environ.get("RECSERVE_BUNDLE_DIR", "bundles")),
)
DEGRADED = {"count": 0}


@events.init_command_line_parser.add_listener
def _defaults(parser: Any) -> None:
    # Headless by default with users/duration from the environment; CLI flags still win.
    parser.set_defaults(
        headless=True,
        num_users=USERS,
        spawn_rate=float(os.environ.get("RECSERVE_LOCUST_SPAWN_RATE", str(USERS))),
        run_time=os.environ.get("RECSERVE_LOCUST_DURATION", "30s"),
        host=os.environ.get(stack.TARGET_ENV) or None,
    )


@events.quitting.add_listener
def _report_degraded(environment: Environment, **_: Any) -> None:
    total = environment.stats.total.num_requests
    print(f"degraded answers: {DEGRADED['count']} of {total} calls")


class RecommenderUser(User):
    wait_time = constant_throughput(RATE / max(USERS, 1))

    def on_start(self) -> None:
        target = self.host or stack.resolve().target
        creds = stack.channel_credentials()
        self.channel = (
            grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
        )
        self.stub = recommender_pb2_grpc.RecommenderServiceStub(self.channel)
        self.metadata = stack.call_metadata()
        self.requests = RequestFactory(CATALOG, seed=id(self) % 2**32)

    def on_stop(self) -> None:
        self.channel.close()

    def _call(self, name: str, method: Callable[..., Any], request: Any) -> Any:
        start = time.perf_counter()
        response, error = None, None
        try:
            response = method(request, timeout=2.0, metadata=self.metadata)
        except grpc.RpcError as e:
            error = e
        if response is not None and getattr(response, "degraded", False):
            DEGRADED["count"] += 1
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=response.ByteSize() if response is not None else 0,
            exception=error,
            context={},
        )
        return response

    @task(4)
    def session(self) -> None:
        user = self.requests.user()
        events_req = self.requests.record_events(user, int(self.requests.rng.integers(1, 4)))
        self._call("RecordEvents", self.stub.RecordEvents, events_req)
        rec = self.requests.recommend()
        rec.user_id = user
        del rec.recent_item_ids[:]
        rec.recent_item_ids.extend(e.item_id for e in events_req.events)
        self._call("Recommend", self.stub.Recommend, rec)

    @task(1)
    def similar_items(self) -> None:
        self._call("GetSimilarItems", self.stub.GetSimilarItems, self.requests.similar())
