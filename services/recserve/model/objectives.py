"""Business objectives a request may carry: score boosts and answer diversity (pure, no I/O).

The gateway's last step (`recserve.gateway.finalize`) and the offline report
(`python -m recserve.training objectives-report`) call these same functions, so what the
report measures is what is served.

* `apply_boosts`: ``score' = score + Σ weight x value`` over the request's boosts, where
  value is the item's numeric attribute as stored (no rescaling: the caller picks a weight on
  the scale of its attribute); an item without the attribute adds 0. The list is re-sorted by
  the new score (ties keep their order).
* `diversify`: walks the list best first and keeps at most ``max_per_value`` items per value
  of ``attribute``. A multi-valued attribute ("Action|Comedy", split on ``|``) counts the item
  once for each of its values, so it is kept only while every one of its values is under the
  cap; an item without the attribute is never capped. With ``0 < mmr_lambda < 1`` the next
  item is the one with the highest maximal marginal relevance instead of the next best
  (see `diversify`). The answer may be shorter than k when the cap leaves too few items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recserve.items import ScoredItem
from recserve.model.features import MULTI_VALUE_SEPARATOR
from recserve.runtime.errors import InvalidArgument, require_at_most

# More boosts than this in one request is INVALID_ARGUMENT (each one costs a lookup per item).
MAX_BOOSTS = 16

NumericLookup = Callable[[str], Mapping[str, float]]
AttributeLookup = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class Boost:
    """Adds ``weight x numeric_attribute`` of each item to its score."""

    numeric_attribute: str
    weight: float


@dataclass(frozen=True)
class Diversity:
    """At most `max_per_value` items per value of `attribute` (0 = no cap); MMR ordering when
    ``0 < mmr_lambda < 1`` (0, the protobuf default, and 1 both mean relevance order)."""

    attribute: str
    max_per_value: int = 0
    mmr_lambda: float = 0.0

    @property
    def uses_mmr(self) -> bool:
        return 0.0 < self.mmr_lambda < 1.0

    @property
    def active(self) -> bool:
        return self.max_per_value > 0 or self.uses_mmr


def validate_objectives(boosts: Sequence[Boost], diversity: Diversity | None) -> None:
    """INVALID_ARGUMENT naming the field for a request's boosts/diversity that cannot be
    applied. Attribute names the catalog does not know are valid (those items add 0 / are
    uncapped)."""
    require_at_most(len(boosts), MAX_BOOSTS, "boosts")
    for i, boost in enumerate(boosts):
        if not boost.numeric_attribute:
            raise InvalidArgument(f"boosts[{i}].numeric_attribute must be set")
        if not math.isfinite(boost.weight):
            raise InvalidArgument(f"boosts[{i}].weight must be finite, got {boost.weight}")
    if diversity is None:
        return
    if diversity.max_per_value < 0:
        raise InvalidArgument(
            f"diversity.max_per_value must be >= 0 (0 = no cap), got {diversity.max_per_value}"
        )
    if not 0.0 <= diversity.mmr_lambda <= 1.0:  # False for NaN too
        raise InvalidArgument(f"diversity.mmr_lambda must be in [0, 1], got {diversity.mmr_lambda}")
    if diversity.active and not diversity.attribute:
        raise InvalidArgument("diversity.attribute must be set when diversity is requested")


def apply_boosts(
    items: Sequence[ScoredItem], numeric_lookup: NumericLookup, boosts: Sequence[Boost]
) -> list[ScoredItem]:
    """Items re-scored with ``score + Σ weight x numeric_lookup(id)[attribute]`` (missing
    attribute = 0), best first; ties keep the input order. No boosts: the items unchanged."""
    if not boosts:
        return list(items)
    boosted = []
    for item in items:
        numeric = numeric_lookup(item.item_id)
        extra = sum(b.weight * numeric.get(b.numeric_attribute, 0.0) for b in boosts)
        boosted.append(replace(item, score=item.score + extra))
    # sorted() is stable, so equal scores keep their upstream order.
    return sorted(boosted, key=lambda i: -i.score)


def attribute_values(attributes: Mapping[str, str], name: str) -> frozenset[str]:
    """The values of one catalog attribute: "Action|Comedy" -> {"Action", "Comedy"}."""
    raw = attributes.get(name, "")
    return frozenset(v for v in raw.split(MULTI_VALUE_SEPARATOR) if v)


def diversify(
    items: Sequence[ScoredItem],
    attribute_lookup: AttributeLookup,
    diversity: Diversity | None,
    k: int,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> list[ScoredItem]:
    """Up to k of `items` (best first) under `diversity`; no or inactive diversity: the first k.

    Cap: an item is kept only if every value it has is used fewer than `max_per_value` times
    by the items kept before it. MMR: the next item maximises
    ``λ·rel(i) - (1 - λ)·max_{j kept} sim(i, j)``, rel = score min-max scaled to [0, 1] over
    the list, sim = cosine of `vectors` when given (an item without a vector is similar to
    nothing), else the Jaccard overlap of the items' attribute values. Both together: MMR
    order among the items the cap still allows. Scores are returned unchanged."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if diversity is None or not diversity.active or not items:
        return list(items[:k])
    values = [attribute_values(attribute_lookup(i.item_id), diversity.attribute) for i in items]
    cap = diversity.max_per_value
    used: dict[str, int] = {}

    def allowed(position: int) -> bool:
        return cap == 0 or all(used.get(v, 0) < cap for v in values[position])

    def keep(position: int) -> None:
        for v in values[position]:
            used[v] = used.get(v, 0) + 1

    if not diversity.uses_mmr:
        kept: list[int] = []
        for position in range(len(items)):
            if allowed(position):
                keep(position)
                kept.append(position)
                if len(kept) == k:
                    break
        return [items[p] for p in kept]
    return [
        items[p] for p in _mmr_order(items, values, diversity.mmr_lambda, k, vectors, allowed, keep)
    ]


def _mmr_order(
    items: Sequence[ScoredItem],
    values: Sequence[frozenset[str]],
    lam: float,
    k: int,
    vectors: Mapping[str, np.ndarray] | None,
    allowed: Callable[[int], bool],
    keep: Callable[[int], None],
) -> list[int]:
    n = len(items)
    scores = np.asarray([i.score for i in items], dtype=np.float64)
    spread = float(scores.max() - scores.min()) if n else 0.0
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(n)
    similarity = _similarity(items, values, vectors)
    # max similarity of each item to the items kept so far
    closest = np.zeros(n, dtype=np.float64)
    open_ = np.ones(n, dtype=bool)
    order: list[int] = []
    while len(order) < k:
        for position in np.flatnonzero(open_).tolist():
            if not allowed(position):
                open_[position] = False
        if not open_.any():
            break
        gain = np.where(open_, lam * relevance - (1.0 - lam) * closest, -np.inf)
        best = int(np.argmax(gain))  # first maximum: ties go to the better-ranked item
        order.append(best)
        keep(best)
        open_[best] = False
        closest = np.maximum(closest, similarity[best])
    return order


def _similarity(
    items: Sequence[ScoredItem],
    values: Sequence[frozenset[str]],
    vectors: Mapping[str, np.ndarray] | None,
) -> np.ndarray:
    """[n, n] pairwise similarity: cosine of vectors, else Jaccard of attribute values."""
    n = len(items)
    if vectors is not None:
        dim = next((v.shape[0] for v in vectors.values()), 0)
        matrix = np.zeros((n, dim), dtype=np.float64)
        for position, item in enumerate(items):
            vector = vectors.get(item.item_id)
            if vector is not None:
                norm = float(np.linalg.norm(vector))
                if norm > 0:
                    matrix[position] = vector / norm
        return matrix @ matrix.T
    vocabulary = {v: c for c, v in enumerate(sorted(frozenset[str]().union(*values)))}
    member = np.zeros((n, len(vocabulary)), dtype=np.float64)
    for position, item_values in enumerate(values):
        member[position, [vocabulary[v] for v in item_values]] = 1.0
    shared = member @ member.T
    sizes = member.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
