"""Typed Python client for the recserve gateway."""

from recserve.client.client import (
    RecommenderClient,
    Recommendations,
    RecordedEvents,
    ScoredItem,
)

__all__ = ["RecommenderClient", "Recommendations", "RecordedEvents", "ScoredItem"]
