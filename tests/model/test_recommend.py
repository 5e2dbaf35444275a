from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from recserve.model import load_bundle, query_vector, recommend

FEATURES = {"age": "31", "gender": "F", "device": "web"}


def test_recommend_is_deterministic_and_excludes_seen(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    history = [5, 17, 99, 3]
    first = recommend(bundle, history, FEATURES, 20, exclude={7, 8})
    again = recommend(load_bundle(bundle_path), history, FEATURES, 20, exclude={7, 8})
    assert first == again
    assert len(first) == 20
    items = [item for item, _, _ in first]
    assert not set(items) & {5, 17, 99, 3, 7, 8}
    scores = [score for _, score, _ in first]
    assert scores == sorted(scores, reverse=True)
    for (a, sa, _), (b, sb, _) in itertools.pairwise(first):
        assert sa > sb or (sa == sb and a < b)


def test_recommend_equals_the_stages_the_services_run(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    history, exclude, k, wanted = [10, 11, 12], [40], 7, bundle.num_candidates
    qv = query_vector(bundle.input_vectors[history], bundle.query)
    found, ann = bundle.index.search_batched(qv[None], wanted + len(history) + len(exclude))
    keep = [j for j, i in enumerate(found[0]) if i not in {*history, *exclude}][:wanted]
    candidates, ann_scores = found[0][keep].astype(np.int64), ann[0][keep]
    scores = bundle.ranker.score(FEATURES, candidates, ann_scores)
    order = np.lexsort((candidates, -scores))[:k]
    expected = [(int(candidates[o]), float(scores[o]), float(ann_scores[o])) for o in order]
    assert recommend(bundle, history, FEATURES, k, exclude=exclude) == expected


def test_cold_start_serves_popular_like_the_gateway(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    top = bundle.popular[:5].tolist()
    got = recommend(bundle, [], {}, 3, exclude=[top[1]])
    assert got == [(top[0], 1.0, 0.0), (top[2], 1 / 3, 0.0), (top[3], 1 / 4, 0.0)]


def test_bad_arguments(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    with pytest.raises(ValueError):
        recommend(bundle, [1], {}, 0)
    with pytest.raises(ValueError, match="outside"):
        recommend(bundle, [10_000], {}, 5)
    assert len(recommend(bundle, [1], {}, 500, num_candidates=10)) == 10
