"""Ranker features: the one code path shared by training and serving.

A candidate's feature row is sparse and hashed into ``2**hash_bits`` slots, followed by a few
dense numeric columns:

* every (user/context token x item token) cross, e.g. ``gender=F`` x ``genre=Drama``;
* every item token alone and every user token alone (biases);
* numeric: the ANN score, its gap to the best candidate of the list, log(1 + rank in the list)
  and log(1 + item popularity), standardised with statistics fitted at training time.

Hashed features take the value ``cross_value`` (crosses) or ``token_value`` (single tokens)
instead of 1: with one L2 penalty for the whole model, a smaller value regularises that group
more strongly, which is what the many sparse crosses need.

Raw values go in (``age="24"``, ``genres=["Action", "Comedy"]``); `FeatureTransform` turns them
into tokens (categorical values as they are, numbers into the bins fitted at training time), so
Redis and the request context can hold plain values.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy import sparse

RawValue = str | Sequence[str] | None
NUMERIC_FEATURES: tuple[str, ...] = ("ann_score", "ann_gap", "ann_rank_log", "item_log_pop")
POPULARITY_FEATURE = "popularity"
MULTI_VALUE_SEPARATOR = "|"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT_ITEM = np.uint64(0x2545F4914F6CDD1D)
_SALT_USER = np.uint64(0x5851F42D4C957F2D)


def stable_hash(token: str) -> int:
    """64-bit hash that is the same in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads combined hashes over all bits before masking."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class FeatureTransform:
    """Raw value(s) of one named feature -> tokens.

    ``categorical``: each non-empty value is a token. ``bins``: the value is parsed as a number
    and bucketed by ``edges`` (ascending); an unparsable number becomes the token ``name=?``.
    """

    name: str
    kind: Literal["categorical", "bins"] = "categorical"
    edges: tuple[float, ...] = ()
    multi: bool = False

    def tokens(self, raw: RawValue) -> list[str]:
        if raw is None:
            return []
        if isinstance(raw, str):
            values = raw.split(MULTI_VALUE_SEPARATOR) if self.multi else [raw]
        else:
            values = list(raw)
        out: list[str] = []
        for value in values:
            text = value.strip()
            if not text:
                continue
            if self.kind == "bins":
                out.append(f"{self.name}={self._bin(text)}")
            else:
                out.append(f"{self.name}={text}")
        return out

    def _bin(self, value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            return "?"
        if not math.isfinite(number):
            return "?"
        return f"b{int(np.searchsorted(np.asarray(self.edges), number, side='right'))}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": list(self.edges),
            "multi": self.multi,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureTransform:
        kind = data.get("kind", "categorical")
        if kind not in ("categorical", "bins"):
            raise ValueError(f"unknown feature transform kind {kind!r}")
        return cls(
            name=str(data["name"]),
            kind=kind,
            edges=tuple(float(e) for e in data.get("edges", ())),
            multi=bool(data.get("multi", False)),
        )


@dataclass(frozen=True)
class FeatureSpec:
    hash_bits: int = 18
    user: tuple[FeatureTransform, ...] = ()
    item: tuple[FeatureTransform, ...] = ()
    popularity_edges: tuple[float, ...] = ()
    numeric: tuple[str, ...] = NUMERIC_FEATURES
    numeric_mean: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    numeric_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    cross_value: float = 1.0
    token_value: float = 1.0

    def __post_init__(self) -> None:
        if not 8 <= self.hash_bits <= 26:
            raise ValueError(f"hash_bits must be in [8, 26], got {self.hash_bits}")
        if self.numeric != NUMERIC_FEATURES:
            raise ValueError(f"numeric features must be {NUMERIC_FEATURES}, got {self.numeric}")
        if not len(self.numeric_mean) == len(self.numeric_scale) == len(self.numeric):
            raise ValueError("numeric_mean/numeric_scale must match the numeric features")
        if any(s <= 0 or not math.isfinite(s) for s in self.numeric_scale):
            raise ValueError("numeric_scale must be positive and finite")
        if not (self.cross_value > 0 and self.token_value > 0):
            raise ValueError("cross_value and token_value must be positive")

    @property
    def hashed_dim(self) -> int:
        return 1 << self.hash_bits

    @property
    def dim(self) -> int:
        return self.hashed_dim + len(self.numeric)

    def with_numeric_stats(self, mean: Sequence[float], scale: Sequence[float]) -> FeatureSpec:
        return replace(
            self,
            numeric_mean=tuple(float(m) for m in mean),
            numeric_scale=tuple(float(s) for s in scale),
        )

    def user_tokens(self, features: Mapping[str, str]) -> list[str]:
        # Only features the model was trained with: any other key would land on a hashed slot
        # owned by something else.
        out: list[str] = []
        for transform in self.user:
            out.extend(transform.tokens(features.get(transform.name)))
        return out

    def item_tokens(self, features: Mapping[str, RawValue], popularity: int) -> list[str]:
        out: list[str] = []
        for transform in self.item:
            out.extend(transform.tokens(features.get(transform.name)))
        if self.popularity_edges:
            bucket = int(
                np.searchsorted(
                    np.asarray(self.popularity_edges), math.log1p(popularity), side="right"
                )
            )
            out.append(f"{POPULARITY_FEATURE}=b{bucket}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash_bits": self.hash_bits,
            "user": [t.to_dict() for t in self.user],
            "item": [t.to_dict() for t in self.item],
            "popularity_edges": list(self.popularity_edges),
            "numeric": list(self.numeric),
            "numeric_mean": list(self.numeric_mean),
            "numeric_scale": list(self.numeric_scale),
            "cross_value": self.cross_value,
            "token_value": self.token_value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            hash_bits=int(data["hash_bits"]),
            user=tuple(FeatureTransform.from_dict(t) for t in data.get("user", ())),
            item=tuple(FeatureTransform.from_dict(t) for t in data.get("item", ())),
            popularity_edges=tuple(float(e) for e in data.get("popularity_edges", ())),
            numeric=tuple(str(n) for n in data.get("numeric", NUMERIC_FEATURES)),
            numeric_mean=tuple(float(m) for m in data["numeric_mean"]),
            numeric_scale=tuple(float(s) for s in data["numeric_scale"]),
            cross_value=float(data.get("cross_value", 1.0)),
            token_value=float(data.get("token_value", 1.0)),
        )


@dataclass(frozen=True)
class _FeatureParts:
    n: int
    # Candidate row of each item token.
    token_row: np.ndarray
    # Hashed columns: [tokens, user tokens] crosses, item tokens, user tokens.
    cross: np.ndarray
    item_only: np.ndarray
    user_only: np.ndarray
    # Standardised numeric features [n, len(NUMERIC_FEATURES)].
    numeric: np.ndarray


@dataclass
class FeatureEncoder:
    """Feature rows for (user features, candidate list, ANN scores).

    Built from the spec, every item's raw features and popularity counts; item token hashes are
    precomputed once so a request only hashes its few user tokens.
    """

    spec: FeatureSpec
    item_features: Sequence[Mapping[str, RawValue]]
    popularity: np.ndarray
    _token_ptr: np.ndarray = field(init=False, repr=False)
    _token_hash: np.ndarray = field(init=False, repr=False)
    _log_pop: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        popularity = np.asarray(self.popularity, dtype=np.int64)
        if popularity.shape != (len(self.item_features),):
            raise ValueError(
                f"popularity has shape {popularity.shape}, expected ({len(self.item_features)},)"
            )
        ptr = np.zeros(len(self.item_features) + 1, dtype=np.int64)
        hashes: list[int] = []
        for i, (features, count) in enumerate(
            zip(self.item_features, popularity.tolist(), strict=True)
        ):
            tokens = self.spec.item_tokens(features, count)
            hashes.extend(stable_hash(t) for t in tokens)
            ptr[i + 1] = len(hashes)
        self._token_ptr = ptr
        self._token_hash = np.asarray(hashes, dtype=np.uint64)
        self._log_pop = np.log1p(popularity.astype(np.float64))

    @property
    def num_items(self) -> int:
        return len(self._log_pop)

    def numeric_raw(self, candidates: np.ndarray, ann_scores: np.ndarray) -> np.ndarray:
        """float64 [n, 4] unstandardised numeric features (training fits their mean/scale)."""
        ann = np.asarray(ann_scores, dtype=np.float32).astype(np.float64)
        if ann.size == 0:
            return np.zeros((0, len(NUMERIC_FEATURES)), dtype=np.float64)
        ordered = np.sort(ann)
        # rank = how many candidates score strictly higher: independent of the list's order.
        rank = ann.size - np.searchsorted(ordered, ann, side="right")
        return np.column_stack(
            [ann, ordered[-1] - ann, np.log1p(rank.astype(np.float64)), self._log_pop[candidates]]
        )

    def _parts(
        self, user_features: Mapping[str, str], candidates: np.ndarray, ann_scores: np.ndarray
    ) -> _FeatureParts:
        """Hashed columns and numeric values of each candidate row (shared by encode/logits)."""
        cand = np.asarray(candidates, dtype=np.int64)
        ann = np.asarray(ann_scores, dtype=np.float32)
        if cand.ndim != 1 or ann.shape != cand.shape:
            raise ValueError(
                f"candidates {cand.shape} and ann_scores {ann.shape} must be equal 1-D"
            )
        if cand.size and (cand.min() < 0 or cand.max() >= self.num_items):
            raise ValueError(f"candidate index out of range [0, {self.num_items})")
        if not np.isfinite(ann).all():
            raise ValueError("ann_scores contains NaN or infinite values")
        spec = self.spec
        mask = np.uint64(spec.hashed_dim - 1)
        user_hash = np.asarray(
            [stable_hash(t) for t in spec.user_tokens(user_features)], dtype=np.uint64
        )

        starts = self._token_ptr[cand]
        lens = self._token_ptr[cand + 1] - starts
        total = int(lens.sum())
        flat = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total, dtype=np.int64)
        item_hash = self._token_hash[flat]

        mean = np.asarray(spec.numeric_mean)
        scale = np.asarray(spec.numeric_scale)
        return _FeatureParts(
            n=cand.size,
            token_row=np.repeat(np.arange(cand.size, dtype=np.int64), lens),
            cross=(_mix((user_hash[None, :] * _GOLDEN) ^ item_hash[:, None]) & mask).astype(
                np.int64
            ),
            item_only=(_mix(item_hash ^ _SALT_ITEM) & mask).astype(np.int64),
            user_only=(_mix(user_hash ^ _SALT_USER) & mask).astype(np.int64),
            numeric=(self.numeric_raw(cand, ann) - mean) / scale,
        )

    def encode(
        self, user_features: Mapping[str, str], candidates: np.ndarray, ann_scores: np.ndarray
    ) -> sparse.csr_matrix:
        """CSR float64 [n, spec.dim], canonical (sorted indices, duplicates summed)."""
        spec = self.spec
        parts = self._parts(user_features, candidates, ann_scores)
        n, n_user, n_num = parts.n, parts.user_only.size, len(spec.numeric)
        total = parts.token_row.size
        rows = np.concatenate(
            [
                np.repeat(parts.token_row, n_user),
                parts.token_row,
                np.repeat(np.arange(n, dtype=np.int64), n_user),
                np.repeat(np.arange(n, dtype=np.int64), n_num),
            ]
        )
        cols = np.concatenate(
            [
                parts.cross.ravel(),
                parts.item_only,
                np.tile(parts.user_only, n),
                spec.hashed_dim + np.tile(np.arange(n_num, dtype=np.int64), n),
            ]
        )
        vals = np.concatenate(
            [
                np.full(total * n_user, spec.cross_value),
                np.full(total + n * n_user, spec.token_value),
                parts.numeric.ravel(),
            ]
        )
        matrix = sparse.coo_matrix((vals, (rows, cols)), shape=(n, spec.dim)).tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        return matrix

    def logits(
        self,
        user_features: Mapping[str, str],
        candidates: np.ndarray,
        ann_scores: np.ndarray,
        weights: np.ndarray,
    ) -> np.ndarray:
        """encode(...) @ weights without building the matrix: the serving hot path. Same
        features, same weights; only the order of the float64 additions differs."""
        spec = self.spec
        parts = self._parts(user_features, candidates, ann_scores)
        per_token = (
            spec.cross_value * weights[parts.cross].sum(axis=1)
            + spec.token_value * weights[parts.item_only]
        )
        tokens = np.bincount(parts.token_row, weights=per_token, minlength=parts.n)
        user = spec.token_value * weights[parts.user_only].sum()
        numeric = parts.numeric @ weights[spec.hashed_dim :]
        return np.asarray(tokens + user + numeric, dtype=np.float64)
