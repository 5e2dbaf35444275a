"""Fits the cross-feature logistic-regression ranker on real candidate lists.

Each training list is what the candidate stage returns for a held-out next event (the events
word2vec did not see): label 1 for the item the user really took next, 0 for the other
candidates. Features come from `recserve.model.features`, the code serving runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from recserve.model.features import FeatureEncoder, FeatureSpec, FeatureTransform, RawValue
from recserve.model.ranker import Ranker

MAX_CATEGORIES = 200
NUMERIC_MIN_DISTINCT = 12
NUMERIC_MIN_SHARE = 0.95
NUM_BINS = 8


@dataclass
class FeatureChoice:
    transforms: list[FeatureTransform]
    dropped: dict[str, str]


def choose_transforms(table: Iterable[Mapping[str, RawValue]]) -> FeatureChoice:
    """Per feature column: numeric -> quantile bins, low-cardinality -> categorical, else drop
    (ids, titles, free text would only add noise to the hashed space)."""
    values: dict[str, list[str]] = {}
    multi: set[str] = set()
    for row in table:
        for name, raw in row.items():
            if raw is None:
                continue
            if isinstance(raw, str):
                values.setdefault(name, []).append(raw)
            else:
                multi.add(name)
                values.setdefault(name, []).extend(raw)
    transforms: list[FeatureTransform] = []
    dropped: dict[str, str] = {}
    for name in sorted(values):
        column = [v.strip() for v in values[name] if v.strip()]
        distinct = set(column)
        if not column:
            dropped[name] = "empty"
            continue
        numbers = _numbers(column)
        if (
            name not in multi
            and len(numbers) >= NUMERIC_MIN_SHARE * len(column)
            and len(distinct) > NUMERIC_MIN_DISTINCT
        ):
            edges = np.unique(np.quantile(numbers, np.linspace(0, 1, NUM_BINS + 1)[1:-1]))
            transforms.append(FeatureTransform(name, "bins", tuple(float(e) for e in edges)))
        elif len(distinct) <= MAX_CATEGORIES:
            transforms.append(FeatureTransform(name, "categorical", multi=name in multi))
        else:
            dropped[name] = f"{len(distinct)} distinct values (> {MAX_CATEGORIES})"
    return FeatureChoice(transforms, dropped)


def _numbers(column: Sequence[str]) -> np.ndarray:
    out = []
    for value in column:
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            out.append(number)
    return np.asarray(out, dtype=np.float64)


def fit_feature_spec(
    user_rows: Iterable[Mapping[str, RawValue]],
    item_rows: Iterable[Mapping[str, RawValue]],
    popularity: np.ndarray,
    *,
    hash_bits: int,
) -> tuple[FeatureSpec, dict[str, Any]]:
    users = choose_transforms(user_rows)
    items = choose_transforms(item_rows)
    log_pop = np.log1p(np.asarray(popularity, dtype=np.float64))
    pop_edges: np.ndarray = (
        np.unique(np.quantile(log_pop, np.linspace(0, 1, NUM_BINS + 1)[1:-1]))
        if log_pop.size
        else np.zeros(0)
    )
    spec = FeatureSpec(
        hash_bits=hash_bits,
        user=tuple(users.transforms),
        item=tuple(items.transforms),
        popularity_edges=tuple(float(e) for e in pop_edges),
    )
    report = {
        "user_features": [t.name for t in users.transforms],
        "item_features": [t.name for t in items.transforms],
        "dropped": {
            **{f"user.{k}": v for k, v in users.dropped.items()},
            **{f"item.{k}": v for k, v in items.dropped.items()},
        },
    }
    return spec, report


@dataclass
class RankerExamples:
    """Candidate lists of held-out events, with labels."""

    features: list[Mapping[str, str]]
    candidates: list[np.ndarray]
    ann_scores: list[np.ndarray]
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.candidates)

    def subset(self, keep: np.ndarray) -> RankerExamples:
        pick = np.flatnonzero(keep).tolist()
        return RankerExamples(
            [self.features[i] for i in pick],
            [self.candidates[i] for i in pick],
            [self.ann_scores[i] for i in pick],
            [self.labels[i] for i in pick],
        )


def standardised_encoder(
    spec: FeatureSpec,
    item_features: Sequence[Mapping[str, RawValue]],
    popularity: np.ndarray,
    examples: RankerExamples,
) -> FeatureEncoder:
    """Encoder whose numeric features are standardised on the training lists."""
    raw = FeatureEncoder(spec, item_features, popularity)
    stacked = [
        raw.numeric_raw(c, a)
        for c, a in zip(examples.candidates, examples.ann_scores, strict=True)
        if c.size
    ]
    if stacked:
        numeric = np.concatenate(stacked)
        mean, scale = numeric.mean(axis=0), numeric.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
    else:
        mean, scale = np.zeros(len(spec.numeric)), np.ones(len(spec.numeric))
    spec = spec.with_numeric_stats(mean.tolist(), scale.tolist())
    return FeatureEncoder(spec, item_features, popularity)


def design_matrix(
    encoder: FeatureEncoder, examples: RankerExamples
) -> tuple[sparse.csr_matrix, np.ndarray]:
    blocks = [
        encoder.encode(f, c, a)
        for f, c, a in zip(examples.features, examples.candidates, examples.ann_scores, strict=True)
        if c.size
    ]
    labels = [y for y in examples.labels if y.size]
    if not blocks:
        raise ValueError("no candidate lists to train the ranker on")
    return sparse.vstack(blocks, format="csr"), np.concatenate(labels).astype(np.int8)


def fit_ranker(
    encoder: FeatureEncoder, examples: RankerExamples, *, c: float, max_iter: int = 1000
) -> Ranker:
    matrix, labels = design_matrix(encoder, examples)
    if labels.min() == labels.max():
        raise ValueError("ranker training lists hold only one class (is the candidate recall 0?)")
    # Fit on the columns that occur only: the hashed space is mostly empty, and L-BFGS on
    # 2**18 columns is several times slower for the same solution (unused weights stay 0).
    used = np.unique(matrix.indices)
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter, tol=1e-6)
    model.fit(matrix[:, used], labels)
    weights = np.zeros(encoder.spec.dim, dtype=np.float64)
    weights[used] = model.coef_.ravel()
    return Ranker(encoder, weights, float(model.intercept_[0]))
