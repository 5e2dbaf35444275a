"""Mean item vector per attribute value (e.g. ``genre=Comedy``), in the query (input) space and
the index (scoring) space: what a cold-start item's vectors are built from.

Stored in the bundle as ``attribute_values.json`` (``[name, value]`` pairs, row order),
``attribute_means_input.npy``, ``attribute_means_scoring.npy`` (float32 [m, d]) and
``attribute_counts.npy`` (int64 [m], how many trained items have the value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from recserve.model.features import MULTI_VALUE_SEPARATOR, RawValue

Token = tuple[str, str]


def attribute_tokens(attributes: Mapping[str, RawValue]) -> list[Token]:
    """(name, value) pairs of an item: lists and ``a|b`` strings give one pair per value."""
    out: list[Token] = []
    for name, raw in attributes.items():
        if raw is None:
            continue
        values = raw.split(MULTI_VALUE_SEPARATOR) if isinstance(raw, str) else list(raw)
        out.extend((name, v.strip()) for v in values if v.strip())
    return list(dict.fromkeys(out))


def means_field(token: Token) -> str:
    """The field of a version's attribute-means hash in Redis (names never contain '=')."""
    return f"{token[0]}={token[1]}"


def token_of(field: str) -> Token:
    """`means_field` back to (name, value)."""
    name, _, value = field.partition("=")
    return name, value


@dataclass(frozen=True)
class AttributeMeans:
    values: list[Token]
    input: np.ndarray  # float32 [m, d]
    scoring: np.ndarray  # float32 [m, d]
    counts: np.ndarray  # int64 [m]
    row_of: dict[Token, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row_of", {t: row for row, t in enumerate(self.values)})
        m = len(self.values)
        if self.input.shape[0] != m or self.scoring.shape != self.input.shape:
            raise ValueError("attribute means need one input and one scoring row per value")
        if self.counts.shape != (m,):
            raise ValueError("attribute means need one count per value")

    @classmethod
    def fit(
        cls,
        item_attributes: Sequence[Mapping[str, RawValue]],
        input_vectors: np.ndarray,
        scoring_vectors: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        rescale: bool = True,
    ) -> AttributeMeans:
        """Mean vectors of the items having each attribute value (`weights` per item, e.g.
        popularity; None = plain mean). Values no item has a positive weight for are left out.

        `rescale`: each mean keeps its direction but gets the (weighted) mean norm of its items:
        averaging shrinks vectors, and a short vector never wins a dot-product search."""
        n = len(item_attributes)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        rows: dict[Token, list[int]] = {}
        for item, attributes in enumerate(item_attributes):
            for token in attribute_tokens(attributes):
                rows.setdefault(token, []).append(item)
        values = [t for t in sorted(rows) if w[rows[t]].sum() > 0]
        dim = input_vectors.shape[1]
        means_in = np.zeros((len(values), dim), dtype=np.float32)
        means_out = np.zeros((len(values), dim), dtype=np.float32)
        for row, token in enumerate(values):
            items = np.asarray(rows[token])
            wi = w[items] / w[items].sum()
            for out, vectors in ((means_in, input_vectors), (means_out, scoring_vectors)):
                block = vectors[items].astype(np.float64)
                mean = wi @ block
                if rescale:
                    mean = rescaled(mean, float(wi @ np.linalg.norm(block, axis=1)))
                out[row] = mean
        counts = np.asarray([len(rows[t]) for t in values], dtype=np.int64)
        return cls(values, means_in, means_out, counts)

    def rows(self, tokens: Iterable[Token]) -> np.ndarray:
        return np.asarray([self.row_of[t] for t in tokens if t in self.row_of], dtype=np.int64)


def rescaled(vector: np.ndarray, norm: float) -> np.ndarray:
    """`vector` with length `norm` (unchanged when it is zero)."""
    length = float(np.linalg.norm(vector))
    return vector * (norm / length) if length > 0 else vector
