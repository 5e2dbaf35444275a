"""Fits the cross-feature logistic-regression ranker on real candidate lists.

Each training list is what the candidate stage returns for a held-out next event (the events
word2vec did not see): label 1 for the item the user really took next, 0 for the other
candidates. Features come from `recserve.model.features`, the code serving runs; the per-item
state they read (item-kNN neighbour table, decayed popularity, first-event times) is
`fit_item_state`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from recserve.model.features import (
    NUMERIC_FEATURES,
    FeatureEncoder,
    FeatureSpec,
    FeatureTransform,
    ItemState,
    RawValue,
)
from recserve.model.ranker import Ranker
from recserve.training.sequences import UserSequences

MAX_CATEGORIES = 200
NUMERIC_MIN_DISTINCT = 12
NUMERIC_MIN_SHARE = 0.95
NUM_BINS = 8
# log(1 + history length) bin edges of the history-length user token.
HISTORY_EDGES = tuple(float(np.log1p(n)) for n in (5, 10, 20, 50, 100))
NEIGHBOURS = 50
HALF_LIFE_DAYS = 14.0
_DAY = 86400.0


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
        numeric=NUMERIC_FEATURES,
        numeric_mean=(0.0,) * len(NUMERIC_FEATURES),
        numeric_scale=(1.0,) * len(NUMERIC_FEATURES),
        history_edges=HISTORY_EDGES,
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


def fit_item_state(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    num_items: int,
    *,
    neighbours: int = NEIGHBOURS,
    half_life_days: float = HALF_LIFE_DAYS,
    block: int = 1024,
) -> ItemState:
    """Per-item state from events in model item indices: each item's top `neighbours` items by
    cosine of co-occurrence (binary user x item matrix; rows in index order, see `ItemState`),
    its event count decayed with `half_life_days` to the last event's time, and the time of its
    first event (items without events: the last event's time)."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    num_users = int(users.max()) + 1 if users.size else 0
    matrix = sparse.csr_matrix(
        (np.ones(users.size, dtype=np.float32), (users, items)), shape=(num_users, num_items)
    )
    matrix.data[:] = 1.0  # duplicates summed by the constructor: back to binary
    item_user = matrix.T.tocsr()
    norms = np.sqrt(np.maximum(np.asarray(item_user.sum(axis=1)).ravel(), 1.0))
    top = min(neighbours, max(num_items - 1, 1))
    nbr = np.full((num_items, top), num_items, dtype=np.int32)
    sim = np.zeros((num_items, top), dtype=np.float32)
    for lo in range(0, num_items, block):
        hi = min(lo + block, num_items)
        co = (item_user[lo:hi] @ matrix).tocsr()  # sparse: memory follows co-occurrences
        for row in range(hi - lo):
            start, end = co.indptr[row], co.indptr[row + 1]
            cols = co.indices[start:end]
            cosine = co.data[start:end] / (norms[lo + row] * norms[cols])
            cosine[cols == lo + row] = 0.0  # not its own neighbour
            # Highest cosine first, ties by item index: a stable order for the same events.
            order = np.lexsort((cols, -cosine))[:top]
            order = order[cosine[order] > 0]
            order = order[np.argsort(cols[order])]  # ItemState rows are in index order
            nbr[lo + row, : order.size] = cols[order]
            sim[lo + row, : order.size] = cosine[order]
    now = float(times.max()) if times.size else 0.0
    decay = np.exp2(-(now - times) / (half_life_days * _DAY))
    recent = np.bincount(items, weights=decay, minlength=num_items)
    first = np.full(num_items, now)
    np.minimum.at(first, items, times)
    return ItemState(nbr, sim, recent.astype(np.float64), first)


@dataclass
class RankerExamples:
    """Candidate lists of held-out events, with labels, the history (model item indices,
    oldest first) each list was built from and the held-out event's time (epoch seconds)."""

    features: list[Mapping[str, str]]
    candidates: list[np.ndarray]
    ann_scores: list[np.ndarray]
    labels: list[np.ndarray]
    histories: list[np.ndarray]
    times: list[float | None]

    def __len__(self) -> int:
        return len(self.candidates)

    def subset(self, keep: np.ndarray) -> RankerExamples:
        pick = np.flatnonzero(keep).tolist()
        return RankerExamples(
            [self.features[i] for i in pick],
            [self.candidates[i] for i in pick],
            [self.ann_scores[i] for i in pick],
            [self.labels[i] for i in pick],
            [self.histories[i] for i in pick],
            [self.times[i] for i in pick],
        )


def standardised_encoder(
    spec: FeatureSpec,
    item_features: Sequence[Mapping[str, RawValue]],
    popularity: np.ndarray,
    examples: RankerExamples,
    item_state: ItemState | None = None,
) -> FeatureEncoder:
    """Encoder whose numeric features are standardised on the training lists."""
    raw = FeatureEncoder(spec, item_features, popularity, item_state)
    stacked = [
        raw.numeric_raw(c, a, h, t)
        for c, a, h, t in zip(
            examples.candidates,
            examples.ann_scores,
            examples.histories,
            examples.times,
            strict=True,
        )
        if c.size
    ]
    if stacked:
        numeric = np.concatenate(stacked)
        mean, scale = numeric.mean(axis=0), numeric.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
    else:
        mean, scale = np.zeros(len(spec.numeric)), np.ones(len(spec.numeric))
    spec = spec.with_numeric_stats(mean.tolist(), scale.tolist())
    return FeatureEncoder(spec, item_features, popularity, item_state)


def design_matrix(
    encoder: FeatureEncoder, examples: RankerExamples
) -> tuple[sparse.csr_matrix, np.ndarray]:
    blocks = [
        encoder.encode(f, c, a, h, t)
        for f, c, a, h, t in zip(
            examples.features,
            examples.candidates,
            examples.ann_scores,
            examples.histories,
            examples.times,
            strict=True,
        )
        if c.size
    ]
    labels = [y for y in examples.labels if y.size]
    if not blocks:
        raise ValueError("no candidate lists to train the ranker on")
    return sparse.vstack(blocks, format="csr"), np.concatenate(labels).astype(np.int8)


def fit_ranker(
    encoder: FeatureEncoder,
    examples: RankerExamples,
    *,
    c: float,
    positive_weight: float = 1.0,
    max_iter: int = 1000,
) -> Ranker:
    """L2 logistic regression; `positive_weight` is the class weight of the positives (one per
    list against ~100 negatives)."""
    matrix, labels = design_matrix(encoder, examples)
    if labels.min() == labels.max():
        raise ValueError("ranker training lists hold only one class (is the candidate recall 0?)")
    # Fit on the columns that occur only: the hashed space is mostly empty, and L-BFGS on
    # 2**18 columns is several times slower for the same solution (unused weights stay 0).
    used = np.unique(matrix.indices)
    model = LogisticRegression(
        C=c, solver="lbfgs", max_iter=max_iter, tol=1e-6, class_weight={0: 1.0, 1: positive_weight}
    )
    model.fit(matrix[:, used], labels)
    weights = np.zeros(encoder.spec.dim, dtype=np.float64)
    weights[used] = model.coef_.ravel()
    return Ranker(encoder, weights, float(model.intercept_[0]))


def item_state_of(seqs: UserSequences, mask: np.ndarray, index_of: np.ndarray) -> ItemState:
    """`fit_item_state` over the masked events, in model item indices (`index_of` maps dataset
    item codes to them; items outside the model are left out)."""
    items = index_of[seqs.items[mask]]
    known = items >= 0
    return fit_item_state(
        seqs.users[mask][known],
        items[known],
        seqs.timestamps[mask][known],
        int(index_of.max()) + 1 if index_of.size else 0,
    )
