"""Typed Python client for the recserve gateway."""

from recserve.client.client import (
    Recommendations,
    RecommenderClient,
    RecordedEvents,
    ScoredItem,
)

__all__ = ["Recommendations", "RecommenderClient", "RecordedEvents", "ScoredItem"]
