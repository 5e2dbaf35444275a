"""Typed Python clients for the recserve gateway, sync and asyncio, with the recommended
channel setup built in (see `recserve.client.options`).

    with RecommenderClient("dns:///gateway.recserve.svc.cluster.local:50051") as client:
        client.recommend("42", k=10).item_ids

    async with AsyncRecommenderClient() as client:  # target from $RECSERVE_TARGET
        (await client.recommend("42", k=10)).item_ids
"""

from recserve.client.aio import AsyncRecommenderClient
from recserve.client.client import RecommenderClient
from recserve.client.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidArgument,
    RecommenderError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from recserve.client.options import TARGET_ENV, ClientOptions, channel_options, service_config
from recserve.client.results import Recommendations, RecordedEvents, ScoredItem

__all__ = [
    "TARGET_ENV",
    "AsyncRecommenderClient",
    "Cancelled",
    "ClientOptions",
    "DeadlineExceeded",
    "InvalidArgument",
    "Recommendations",
    "RecommenderClient",
    "RecommenderError",
    "RecordedEvents",
    "ResourceExhausted",
    "ScoredItem",
    "Unauthenticated",
    "Unavailable",
    "channel_options",
    "service_config",
]
