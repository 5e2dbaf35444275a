"""Gateway domain types and the backend interface (no gRPC)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from recserve.items import ScoredItem
from recserve.model.events import AppendResult, UserEvent
from recserve.model.filters import ItemFilter
from recserve.model.objectives import Boost, Diversity


class Degraded(enum.Enum):
    COLD_START = "cold_start"
    RANKING_UNAVAILABLE = "ranking_unavailable"
    CANDIDATES_UNAVAILABLE = "candidates_unavailable"
    EMBEDDING_STORE_UNAVAILABLE = "embedding_store_unavailable"


class StageUnavailable(Exception):
    """A backend failed, timed out or shed the call; the gateway falls back."""


class VersionNotLoaded(Exception):
    """A backend does not have the pinned model version (yet, or any more)."""


@dataclass(frozen=True)
class RecommendQuery:
    user_id: str
    recent_item_ids: Sequence[str]
    context: Mapping[str, str]
    k: int
    exclude_item_ids: Sequence[str]
    filters: Sequence[ItemFilter]
    boosts: Sequence[Boost] = ()
    diversity: Diversity | None = None


@dataclass
class Recommendation:
    items: list[ScoredItem]
    model_version: str
    degraded: Degraded | None = None
    degraded_detail: str = ""
    unknown_item_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UserState:
    history: Sequence[str]
    features: Mapping[str, str]
    query_vector: bytes
    unknown_item_ids: Sequence[str]


@dataclass(frozen=True)
class CandidateRequest:
    query_vector: bytes
    item_id: str
    exclude_item_ids: Sequence[str]
    num_candidates: int


@dataclass(frozen=True)
class CandidateList:
    item_ids: Sequence[str]
    item_indices: Sequence[int]
    ann_scores: Sequence[float]
    unknown_item_ids: Sequence[str]
    # Parallel to item_ids (empty = none): cold-start items, whose item index means nothing.
    cold_start: Sequence[bool] = ()


@dataclass(frozen=True)
class RankRequest:
    features: Mapping[str, str]
    item_indices: Sequence[int]
    ann_scores: Sequence[float]
    k: int
    # The user's known item ids, oldest first (the ranker's history features).
    history_item_ids: Sequence[str] = ()


class CatalogLookup(Protocol):
    """The live catalog as the gateway reads it (`recserve.catalog.view.CatalogView`)."""

    def is_available(self, item_id: str) -> bool:
        """False once the item is taken down; an id the catalog does not know is available."""

    def attributes(self, item_id: str) -> Mapping[str, str]: ...

    def numeric(self, item_id: str) -> Mapping[str, float]: ...

    def take_new_item_written_at(self, item_id: str) -> float | None:
        """Upsert time of an item new since the catalog copy loaded, once; else None."""


class ModelVersions(Protocol):
    """The model versions requests are pinned to (`recserve.gateway.models.ModelTracker`)."""

    def serving_versions(self) -> list[str]:
        """Newest first; a request falls back to the next when a backend lacks a version."""

    def popular(self, version: str) -> list[str]:
        """Item ids of the cold-start / fallback list of `version`, most popular first."""

    def num_candidates(self, version: str) -> int:
        """Candidates ranked per request, as `version` was evaluated with."""


class Backends(Protocol):
    """The three stages; deadlines are absolute event-loop times. Failures raise
    StageUnavailable or VersionNotLoaded."""

    async def user_state(
        self, version: str, user_id: str, recent_item_ids: Sequence[str], deadline: float
    ) -> UserState: ...

    async def candidates(
        self, version: str, request: CandidateRequest, deadline: float
    ) -> CandidateList: ...

    async def rank(
        self, version: str, request: RankRequest, deadline: float
    ) -> list[ScoredItem]: ...

    async def append_events(
        self, user_id: str, events: Sequence[UserEvent], deadline: float
    ) -> AppendResult: ...
