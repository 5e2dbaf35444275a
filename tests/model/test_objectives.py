"""Boosts, diversity and their validation (`recserve.model.objectives`), pure unit tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recserve.items import ScoredItem
from recserve.model.objectives import (
    MAX_BOOSTS,
    Boost,
    Diversity,
    apply_boosts,
    attribute_values,
    diversify,
    validate_objectives,
)
from recserve.runtime.errors import InvalidArgument

GENRES = {
    "a": "Action",
    "b": "Action|Comedy",
    "c": "Action",
    "d": "Comedy",
    "e": "Drama",
    "f": "",
}
MARGIN = {"a": 0.0, "b": 1.0, "c": 0.5, "d": 2.0}


def listing(*pairs: tuple[str, float]) -> list[ScoredItem]:
    return [ScoredItem(i, s, ann_score=s, ranker_score=s) for i, s in pairs]


def attrs(item_id: str) -> dict[str, str]:
    return {"genre": GENRES[item_id]} if GENRES.get(item_id) else {}


def numeric(item_id: str) -> dict[str, float]:
    return {"margin": MARGIN[item_id]} if item_id in MARGIN else {}


ITEMS = listing(("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6), ("e", 0.5), ("f", 0.4))


def ids(items: list[ScoredItem]) -> list[str]:
    return [i.item_id for i in items]


def test_boost_adds_weight_times_value_and_resorts() -> None:
    out = apply_boosts(ITEMS, numeric, [Boost("margin", 0.1)])
    scores = {i.item_id: i.score for i in out}
    assert scores["a"] == pytest.approx(0.9)
    assert scores["b"] == pytest.approx(0.9)  # 0.8 + 0.1 * 1.0: ties keep the input order
    assert scores["d"] == pytest.approx(0.8)
    assert scores["e"] == pytest.approx(0.5)  # no margin attribute: + 0
    assert ids(out) == ["a", "b", "d", "c", "e", "f"]
    # stage scores stay what the ranker said
    assert {i.item_id: i.ranker_score for i in out} == {i.item_id: i.score for i in ITEMS}


def test_boosts_add_up_and_unknown_attributes_add_nothing() -> None:
    two = apply_boosts(ITEMS, numeric, [Boost("margin", 0.1), Boost("margin", -0.3)])
    assert {i.item_id: i.score for i in two}["d"] == pytest.approx(0.6 - 0.4)
    assert apply_boosts(ITEMS, numeric, [Boost("price", 5.0)]) == ITEMS
    assert apply_boosts(ITEMS, numeric, []) == ITEMS


def test_attribute_values_split_multi_valued() -> None:
    assert attribute_values({"genre": "Action|Comedy"}, "genre") == {"Action", "Comedy"}
    assert attribute_values({"genre": "Action"}, "year") == frozenset()


def test_cap_counts_an_item_for_each_of_its_values() -> None:
    out = diversify(ITEMS, attrs, Diversity("genre", max_per_value=1), k=10)
    # a takes Action; b (Action|Comedy) and c (Action) are over the cap; d takes Comedy;
    # f has no genre and is never capped
    assert ids(out) == ["a", "d", "e", "f"]
    out = diversify(ITEMS, attrs, Diversity("genre", max_per_value=2), k=10)
    assert ids(out) == ["a", "b", "d", "e", "f"]  # c would be a third Action
    assert ids(diversify(ITEMS, attrs, Diversity("genre", max_per_value=2), k=2)) == ["a", "b"]


def test_inactive_diversity_is_the_first_k() -> None:
    assert diversify(ITEMS, attrs, None, 3) == ITEMS[:3]
    assert diversify(ITEMS, attrs, Diversity("genre"), 3) == ITEMS[:3]
    assert diversify(ITEMS, attrs, Diversity("genre", mmr_lambda=1.0), 3) == ITEMS[:3]
    assert diversify([], attrs, Diversity("genre", max_per_value=1), 3) == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        diversify(ITEMS, attrs, None, 0)


def test_mmr_with_attribute_overlap_trades_relevance_for_novelty() -> None:
    # λ = 0.5, rel = 1, .8, .6, .4, .2, 0. After a (Action): b (Action|Comedy, Jaccard 0.5)
    # gains 0.4 - 0.25 = 0.15, c (Action) 0.3 - 0.5 = -0.2, d (Comedy) 0.2 → d. Then b 0.15
    # beats e 0.1; the second pure Action c comes last.
    out = diversify(ITEMS, attrs, Diversity("genre", mmr_lambda=0.5), k=4)
    assert ids(out) == ["a", "d", "b", "e"]
    # λ close to 1 is almost relevance order
    assert ids(diversify(ITEMS, attrs, Diversity("genre", mmr_lambda=0.99), k=4)) == [
        "a",
        "b",
        "c",
        "d",
    ]
    # scores are returned as they came in
    original = {i.item_id: i.score for i in ITEMS}
    assert all(i.score == original[i.item_id] for i in out)


def test_mmr_uses_vectors_when_given_and_respects_the_cap() -> None:
    vectors = {
        "a": np.array([1.0, 0.0]),
        "b": np.array([1.0, 0.01]),  # near-duplicate of a
        "c": np.array([0.0, 1.0]),
        "d": np.array([1.0, 0.0]),
    }
    items = ITEMS[:4]
    out = diversify(items, attrs, Diversity("genre", mmr_lambda=0.5), k=2, vectors=vectors)
    assert ids(out) == ["a", "c"]  # b and d point the same way as a
    capped = diversify(
        items, attrs, Diversity("genre", max_per_value=1, mmr_lambda=0.5), k=4, vectors=vectors
    )
    assert ids(capped) == ["a", "d"]  # b and c are over the Action cap


@pytest.mark.parametrize(
    ("boosts", "diversity", "field"),
    [
        ([Boost("margin", math.nan)], None, "boosts[0].weight"),
        ([Boost("margin", 1.0), Boost("margin", math.inf)], None, "boosts[1].weight"),
        ([Boost("", 1.0)], None, "boosts[0].numeric_attribute"),
        ([Boost("m", 1.0)] * (MAX_BOOSTS + 1), None, "boosts"),
        ([], Diversity("genre", max_per_value=-1), "diversity.max_per_value"),
        ([], Diversity("genre", mmr_lambda=1.5), "diversity.mmr_lambda"),
        ([], Diversity("genre", mmr_lambda=-0.1), "diversity.mmr_lambda"),
        ([], Diversity("genre", mmr_lambda=math.nan), "diversity.mmr_lambda"),
        ([], Diversity("", max_per_value=2), "diversity.attribute"),
    ],
)
def test_validation_names_the_field(
    boosts: list[Boost], diversity: Diversity | None, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")):
        validate_objectives(boosts, diversity)


def test_valid_objectives_pass() -> None:
    validate_objectives([Boost("unknown_attribute", -2.5)], Diversity("whatever", 3, 0.0))
    validate_objectives([], Diversity("", 0, 0.0))  # unset diversity message
    validate_objectives([], None)
