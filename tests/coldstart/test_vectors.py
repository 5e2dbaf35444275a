"""Cold-start vectors, the side index and the placement of cold items (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from recserve.candidates.side_index import SideIndex
from recserve.catalog.vectors import MAX_NEIGHBOUR_UPDATES, PRIOR_WEIGHT, prior_vectors, refine
from recserve.gateway.cold_start import place_cold, split_cold
from recserve.gateway.domain import CandidateList
from recserve.items import ScoredItem
from recserve.model.attribute_means import AttributeMeans, attribute_tokens

ITEMS = [{"genre": "a|b", "year": "1995"}, {"genre": ["a"], "year": "1996"}, {"genre": "b"}]
INPUT = np.asarray([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=np.float32)
SCORING = -INPUT


def test_tokens_split_multi_values_and_lists() -> None:
    assert attribute_tokens({"genre": "a| b", "x": ["c", ""], "n": None}) == [
        ("genre", "a"),
        ("genre", "b"),
        ("x", "c"),
    ]


def test_plain_means_and_rescaled_means() -> None:
    plain = AttributeMeans.fit(ITEMS, INPUT, SCORING, rescale=False)
    row = plain.row_of[("genre", "a")]
    np.testing.assert_allclose(plain.input[row], [2.0, 0.0])
    np.testing.assert_allclose(plain.scoring[row], [-2.0, 0.0])
    assert plain.counts[row] == 2
    # genre=b: items 0 and 2, orthogonal unit and length-2 vectors -> mean (0.5, 1) rescaled to 1.5.
    scaled = AttributeMeans.fit(ITEMS, INPUT, SCORING)
    b = scaled.input[scaled.row_of[("genre", "b")]]
    assert np.linalg.norm(b) == pytest.approx(1.5)
    np.testing.assert_allclose(b / np.linalg.norm(b), np.asarray([0.5, 1.0]) / np.hypot(0.5, 1.0))


def test_popularity_weights_the_means() -> None:
    means = AttributeMeans.fit(ITEMS, INPUT, SCORING, np.asarray([1, 3, 0]), rescale=False)
    np.testing.assert_allclose(means.input[means.row_of[("genre", "a")]], [2.5, 0.0])
    # genre=b: item 0 (weight 1) and item 2 (weight 0).
    np.testing.assert_allclose(means.input[means.row_of[("genre", "b")]], [1.0, 0.0])


def test_rules_weight_attributes_differently() -> None:
    means = AttributeMeans.fit(ITEMS, INPUT, SCORING, rescale=False)
    item = {"genre": "a|b", "year": "1996"}
    ga, gb, y = (
        means.input[means.row_of[t]] for t in [("genre", "a"), ("genre", "b"), ("year", "1996")]
    )
    uniform = prior_vectors(means, item, "uniform", rescale=False)
    per_attribute = prior_vectors(means, item, "per_attribute", rescale=False)
    assert uniform is not None and per_attribute is not None
    np.testing.assert_allclose(uniform[0], (ga + gb + y) / 3, rtol=1e-6)
    np.testing.assert_allclose(per_attribute[0], (ga + gb) / 4 + y / 2, rtol=1e-6)
    np.testing.assert_allclose(per_attribute[1], -per_attribute[0], rtol=1e-6)


def test_no_known_value_or_non_finite_means_give_no_vector() -> None:
    means = AttributeMeans.fit(ITEMS, INPUT, SCORING)
    assert prior_vectors(means, {"genre": "zzz"}) is None
    assert prior_vectors(means, {}) is None
    broken = AttributeMeans(
        means.values, np.full_like(means.input, np.nan), means.scoring, means.counts
    )
    assert prior_vectors(broken, {"genre": "a"}) is None


def test_refinement_is_a_bounded_deterministic_blend() -> None:
    prior = np.asarray([1.0, 0.0], dtype=np.float32)
    neighbours = np.asarray([[0.0, 1.0], [0.0, 3.0]], dtype=np.float32)
    counts = np.asarray([2, 1])
    out = refine(prior, neighbours, counts)
    expected = (PRIOR_WEIGHT * prior + 2 * neighbours[0] + neighbours[1]) / (PRIOR_WEIGHT + 3)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert np.array_equal(out, refine(prior, neighbours, counts))
    # A convex combination: never longer than its longest input, however many updates.
    big = refine(prior, neighbours, np.asarray([MAX_NEIGHBOUR_UPDATES, MAX_NEIGHBOUR_UPDATES]))
    assert np.linalg.norm(big) <= 3.0


def test_side_index_search_update_remove() -> None:
    side = SideIndex(2)
    for i in range(40):  # past the initial capacity
        side.put(f"c{i}", np.asarray([i, 0.0]), np.asarray([float(i), 0.0]))
    assert len(side) == 40
    assert side.search(np.asarray([1.0, 0.0]), 3, {"c39"}) == [
        ("c38", 38.0),
        ("c37", 37.0),
        ("c36", 36.0),
    ]
    side.put("c0", np.asarray([0.0, 0.0]), np.asarray([100.0, 0.0]))
    side.remove("c38")
    assert side.search(np.asarray([1.0, 0.0]), 2, set()) == [("c0", 100.0), ("c39", 39.0)]
    assert "c38" not in side and len(side) == 39
    np.testing.assert_array_equal(side.input_vector("c39"), [39.0, 0.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_side_index_refuses_non_finite_vectors(bad: float) -> None:
    side = SideIndex(2)
    with pytest.raises(ValueError, match="not finite"):
        side.put("x", np.asarray([bad, 0.0]), np.asarray([0.0, 0.0]))
    assert len(side) == 0


def test_cold_items_skip_ranking_and_keep_their_ann_position() -> None:
    candidates = CandidateList(
        ["t1", "c1", "t2", "c2"], [4, 0, 7, 0], [0.9, 0.8, 0.7, 0.6], [], [False, True, False, True]
    )
    trained, cold = split_cold(candidates)
    assert list(trained.item_indices) == [4, 7] and list(trained.item_ids) == ["t1", "t2"]
    ranked = [ScoredItem("t2", 0.5), ScoredItem("t1", 0.4)]
    placed = place_cold(ranked, cold)
    assert [i.item_id for i in placed] == ["t2", "c1", "t1", "c2"]
    scores = [i.score for i in placed]
    assert scores == sorted(scores, reverse=True)
