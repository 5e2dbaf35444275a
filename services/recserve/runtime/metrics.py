"""Prometheus metrics, in base units, shared by all services (names in docs/contracts.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Buckets resolve the 1-50 ms range where this stack lives and still show the 200 ms budget.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
)  # fmt: skip

# No metric carries a `service` label: the Prometheus Operator sets that target label, and the
# component (gateway, candidates, ...) is a target label added at scrape time. RPC label names
# follow the stock gRPC exporters; grpc_service is the full proto name (recserve.v1.X).
RPC_DURATION = Histogram(
    "recserve_rpc_duration_seconds",
    "Server-side RPC latency.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=LATENCY_BUCKETS,
)
RPC_TOTAL = Counter(
    "recserve_rpc", "RPCs handled, by status code.", ["grpc_service", "grpc_method", "grpc_code"]
)
# Work items, not RPCs: a batched backend call carries many queries. The HPA scales on this.
QUERIES = Counter("recserve_queries", "Queries handled (requests at the gateway).")
RPC_IN_FLIGHT = Gauge(
    "recserve_rpc_in_flight", "RPCs being handled.", ["grpc_service", "grpc_method"]
)
STAGE_DURATION = Histogram(
    "recserve_stage_duration_seconds",
    "Gateway time per fan-out stage.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "recserve_batch_size",
    "Queries per batched backend call sent by the gateway.",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
DEGRADED = Counter("recserve_degraded", "Responses served by a fallback.", ["reason"])
MODEL_INFO = Gauge("recserve_model_info", "Loaded model version (1 = active).", ["version"])
MODEL_RELOADS = Counter("recserve_model_reloads", "Model load attempts, by outcome.", ["outcome"])
MODEL_LOAD_FAILING = Gauge(
    "recserve_model_load_failing", "1 while the active model version cannot be loaded, else 0."
)


# Catalog: items in a process's CatalogView, write-to-applied lag of each change entry, and how
# long a new item takes to reach its first answer.
CATALOG_ITEMS = Gauge("recserve_catalog_items", "Items in the catalog copy of this process.")
CATALOG_AVAILABLE_ITEMS = Gauge(
    "recserve_catalog_available_items", "Available items in the catalog copy of this process."
)
CATALOG_PROPAGATION = Histogram(
    "recserve_catalog_propagation_seconds",
    "Catalog write (stream entry time) to applied in this process's catalog copy.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
NEW_ITEM_FIRST_RECOMMENDATION = Histogram(
    "recserve_new_item_first_recommendation_seconds",
    "UpsertItems of a new item to the first answer that contains it.",
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0),
)
COLD_START_SERVED = Counter(
    "recserve_cold_start_items_served",
    "Cold-start items (no trained vector in the served version) returned in answers.",
)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> int:
    """Serves /metrics; returns the bound port (port 0 picks a free one)."""
    server, _ = start_http_server(port, addr=host)
    return int(server.server_address[1])
