"""Item filters a request may carry; ranking applies them after scoring whole lists."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ItemFilter:
    """Keeps items whose raw `feature` values include any of `any_of`, or, when `exclude`,
    none of them."""

    feature: str
    any_of: frozenset[str]
    exclude: bool

    def accepts(self, values: frozenset[str]) -> bool:
        return values.isdisjoint(self.any_of) == self.exclude
