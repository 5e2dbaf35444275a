"""finalize: the last step of every answer path (pure; the catalog is an in-memory stand-in)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recserve.gateway.finalize import FinalizeQuery, finalize
from recserve.items import ScoredItem
from recserve.model.filters import ItemFilter
from recserve.model.objectives import Boost, Diversity
from tests.availability.catalog import StaticCatalog

RANKED = [ScoredItem(f"i{n}", 1.0 - n / 10) for n in range(8)]
GENRES = {
    "i0": "Action|Comedy",
    "i1": "Drama",
    "i2": "Comedy",
    "i3": "Action",
    "i4": "Drama|Romance",
    "i5": "Comedy",
    # i6, i7: no genre
}
ATTRIBUTES = {i: {"genre": g} for i, g in GENRES.items()}
CATALOG = StaticCatalog(ATTRIBUTES, {"i7": {"margin": 5.0}, "i1": {"margin": 0.1}})


def ids(items: list[ScoredItem]) -> list[str]:
    return [i.item_id for i in items]


def only(*genres: str, exclude: bool = False) -> ItemFilter:
    return ItemFilter("genre", frozenset(genres), exclude)


def test_drops_unavailable_then_excluded_then_keeps_top_k() -> None:
    catalog = StaticCatalog(unavailable={"i0", "i2"})
    out = finalize(RANKED, FinalizeQuery(3, exclude_item_ids=["i1"]), catalog)
    assert ids(out) == ["i3", "i4", "i5"]
    assert out[0] is RANKED[3]  # scores unchanged without boosts


def test_filters_read_catalog_attributes_multi_valued_split_on_bar() -> None:
    assert ids(finalize(RANKED, FinalizeQuery(10, [only("Comedy")]), CATALOG)) == [
        "i0",
        "i2",
        "i5",
    ]
    # exclude: items without the attribute pass; a multi-valued item with any excluded value not.
    assert ids(finalize(RANKED, FinalizeQuery(10, [only("Comedy", exclude=True)]), CATALOG)) == [
        "i1",
        "i3",
        "i4",
        "i6",
        "i7",
    ]
    # Several filters: all must pass.
    both = [only("Action", "Drama"), only("Romance", exclude=True)]
    assert ids(finalize(RANKED, FinalizeQuery(10, both), CATALOG)) == ["i0", "i1", "i3"]


def test_fewer_than_k_when_too_few_pass() -> None:
    assert ids(finalize(RANKED, FinalizeQuery(5, [only("Romance")]), CATALOG)) == ["i4"]
    assert finalize([], FinalizeQuery(5), CATALOG) == []


def lazy(limit: int) -> Iterator[ScoredItem]:
    for position, item in enumerate(RANKED):
        if position == limit:
            raise AssertionError(f"read past item {limit}")
        yield item


def test_reads_a_lazy_list_only_until_k_passed() -> None:
    catalog = StaticCatalog(unavailable={"i1"})
    assert ids(finalize(lazy(3), FinalizeQuery(2), catalog)) == ["i0", "i2"]


def test_boosts_rescore_the_whole_list_so_a_low_item_can_enter_the_top_k() -> None:
    query = FinalizeQuery(2, boosts=[Boost("margin", 1.0)])
    out = finalize(lazy(len(RANKED)), query, CATALOG)
    assert ids(out) == ["i7", "i0"]
    assert out[0].score == pytest.approx(0.3 + 5.0)


def test_boosts_apply_after_availability_and_filters() -> None:
    catalog = StaticCatalog(ATTRIBUTES, {"i7": {"margin": 5.0}}, unavailable={"i7"})
    query = FinalizeQuery(2, [only("Drama")], boosts=[Boost("margin", 1.0)])
    assert ids(finalize(RANKED, query, catalog)) == ["i1", "i4"]


def test_diversity_caps_per_value_over_the_available_items() -> None:
    query = FinalizeQuery(4, diversity=Diversity("genre", max_per_value=1))
    # i0 takes Action and Comedy; i1 Drama; i2/i3 capped; i4 has Drama; i6 has no genre.
    assert ids(finalize(RANKED, query, CATALOG)) == ["i0", "i1", "i6", "i7"]
    catalog = StaticCatalog(ATTRIBUTES, unavailable={"i0"})
    assert ids(finalize(RANKED, query, catalog)) == ["i1", "i2", "i3", "i6"]


def test_inactive_diversity_keeps_the_early_stop() -> None:
    query = FinalizeQuery(2, diversity=Diversity("genre"))
    assert not query.reorders
    assert ids(finalize(lazy(2), query, CATALOG)) == ["i0", "i1"]
