"""Ranker features: the one code path shared by training and serving.

A candidate's feature row is sparse and hashed into ``2**hash_bits`` slots, followed by a few
dense numeric columns:

* every (user/context token x item token) cross, e.g. ``gender=F`` x ``genre=Drama``;
* every item token alone and every user token alone (biases);
* the user's history length, binned, as one more user token (so it crosses every item token);
* numeric, standardised with statistics fitted at training time (`FeatureSpec.numeric` picks
  an ordered subset of `NUMERIC_FEATURES`):
  - ANN: the score, its gap to the best candidate of the list, log(1 + rank in the list);
  - popularity: log(1 + all-time count), log(1 + time-decayed count); the item's age at the
    request time, log(1 + days since its first event), and log(1 + days until its first event)
    (non-zero only offline, where leave-last-out asks for users' last events at times before
    some items' first events; at serving every known item is older than the request);
  - co-occurrence: the item-kNN score of the candidate against the user's last
    ``knn_history`` items, and against the most recent item alone;
  - affinity: the mean share, in the user's history, of the candidate's attribute tokens
    (e.g. how much of the history is Drama for a Drama candidate).

Per-item state (the item-kNN top-N neighbour table, decayed counts, ages) is an `ItemState` of
plain arrays, stored in the bundle; each candidate costs O(1) lookups in it.

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
# Every numeric feature, in column order; a spec uses an ordered subset.
NUMERIC_FEATURES: tuple[str, ...] = (
    "ann_score",
    "ann_gap",
    "ann_rank_log",
    "item_log_pop",
    "item_log_recent_pop",
    "item_log_age",
    "item_log_until_first",
    "knn_session",
    "knn_last",
    "attr_affinity",
)
# The features that need no per-item state: a spec without `ItemState`.
BASE_NUMERIC: tuple[str, ...] = NUMERIC_FEATURES[:4]
STATE_FEATURES = frozenset(
    {"item_log_recent_pop", "item_log_age", "item_log_until_first", "knn_session", "knn_last"}
)
_DAY = 86400.0
# Item age is computed at the request time rounded down to the hour: the same request gets the
# same answer batched or alone, a second later or on another replica (within the hour).
REQUEST_TIME_RESOLUTION_S = 3600.0
POPULARITY_FEATURE = "popularity"
HISTORY_LENGTH_FEATURE = "history_length"
# History features read at most this many most recent items (cost per request grows with it).
MAX_HISTORY = 50
_NO_HISTORY = np.zeros(0, dtype=np.int64)
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
class ItemState:
    """Per-item arrays the history and popularity-dynamics features read, one row per item.

    ``neighbours[i]`` are item i's top-N co-occurrence neighbours in ascending index order,
    padded with n (= none), with cosine ``neighbour_similarity[i]``: sorted rows let one
    searchsorted find every (history item, candidate) pair, with no copy of the table at load.
    ``recent_popularity`` is the event count decayed to the
    last training event's time and ``first_seen`` the time of an item's first event (epoch
    seconds).
    """

    neighbours: np.ndarray  # int32 [n, N]
    neighbour_similarity: np.ndarray  # float32 [n, N]
    recent_popularity: np.ndarray  # float64 [n]
    first_seen: np.ndarray  # float64 [n]

    def __post_init__(self) -> None:
        n = self.recent_popularity.shape[0]
        if (
            self.neighbours.ndim != 2
            or self.neighbours.shape != self.neighbour_similarity.shape
            or self.neighbours.shape[0] != n
            or self.first_seen.shape != (n,)
        ):
            raise ValueError("item state arrays must have one row per item")
        if self.neighbours.size and (self.neighbours.min() < 0 or self.neighbours.max() > n):
            raise ValueError(f"item state neighbours outside [0, {n}]")
        if (np.diff(self.neighbours, axis=1) < 0).any():
            raise ValueError("item state neighbour rows must be in ascending index order")

    @property
    def num_items(self) -> int:
        return int(self.recent_popularity.shape[0])


@dataclass(frozen=True)
class FeatureSpec:
    hash_bits: int = 18
    user: tuple[FeatureTransform, ...] = ()
    item: tuple[FeatureTransform, ...] = ()
    popularity_edges: tuple[float, ...] = ()
    numeric: tuple[str, ...] = BASE_NUMERIC
    numeric_mean: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    numeric_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    cross_value: float = 1.0
    token_value: float = 1.0
    # Bins of log(1 + history length) for the history-length user token; () = no token.
    history_edges: tuple[float, ...] = ()
    # The co-occurrence score sums over this many most recent items.
    knn_history: int = 5
    max_history: int = MAX_HISTORY

    def __post_init__(self) -> None:
        if not 8 <= self.hash_bits <= 26:
            raise ValueError(f"hash_bits must be in [8, 26], got {self.hash_bits}")
        order = [NUMERIC_FEATURES.index(n) for n in self.numeric if n in NUMERIC_FEATURES]
        if len(order) != len(self.numeric) or order != sorted(set(order)):
            raise ValueError(
                f"numeric features must be an ordered subset of {NUMERIC_FEATURES}, got {self.numeric}"
            )
        if not (self.knn_history >= 1 and self.max_history >= 1):
            raise ValueError("knn_history and max_history must be >= 1")
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

    @property
    def needs_state(self) -> bool:
        return not STATE_FEATURES.isdisjoint(self.numeric)

    def user_tokens(self, features: Mapping[str, str], history_length: int = 0) -> list[str]:
        # Only features the model was trained with: any other key would land on a hashed slot
        # owned by something else.
        out: list[str] = []
        for transform in self.user:
            out.extend(transform.tokens(features.get(transform.name)))
        if self.history_edges:
            length = math.log1p(min(history_length, self.max_history))
            bucket = int(np.searchsorted(np.asarray(self.history_edges), length, side="right"))
            out.append(f"{HISTORY_LENGTH_FEATURE}=b{bucket}")
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
            "history_edges": list(self.history_edges),
            "knn_history": self.knn_history,
            "max_history": self.max_history,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            hash_bits=int(data["hash_bits"]),
            user=tuple(FeatureTransform.from_dict(t) for t in data.get("user", ())),
            item=tuple(FeatureTransform.from_dict(t) for t in data.get("item", ())),
            popularity_edges=tuple(float(e) for e in data.get("popularity_edges", ())),
            numeric=tuple(str(n) for n in data.get("numeric", BASE_NUMERIC)),
            numeric_mean=tuple(float(m) for m in data["numeric_mean"]),
            numeric_scale=tuple(float(s) for s in data["numeric_scale"]),
            cross_value=float(data.get("cross_value", 1.0)),
            token_value=float(data.get("token_value", 1.0)),
            history_edges=tuple(float(e) for e in data.get("history_edges", ())),
            knn_history=int(data.get("knn_history", 5)),
            max_history=int(data.get("max_history", MAX_HISTORY)),
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
    # Standardised numeric features [n, len(spec.numeric)].
    numeric: np.ndarray


@dataclass
class FeatureEncoder:
    """Feature rows for (user features, candidate list, ANN scores, user history).

    Built from the spec, every item's raw features, popularity counts and (when the spec uses
    them) the per-item `ItemState`; item token hashes are precomputed once so a request only
    hashes its few user tokens. The history is item indices, oldest first.
    """

    spec: FeatureSpec
    item_features: Sequence[Mapping[str, RawValue]]
    popularity: np.ndarray
    item_state: ItemState | None = None
    _token_ptr: np.ndarray = field(init=False, repr=False)
    _token_hash: np.ndarray = field(init=False, repr=False)
    # Row i: item i's token positions among the distinct item tokens, padded with the
    # vocabulary size (affinity counts over them); and each item's token count.
    _token_ids: np.ndarray = field(init=False, repr=False)
    _token_count: np.ndarray = field(init=False, repr=False)
    _vocabulary: int = field(init=False, repr=False)
    _log_pop: np.ndarray = field(init=False, repr=False)
    _log_recent_pop: np.ndarray = field(init=False, repr=False)
    _first_seen: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        popularity = np.asarray(self.popularity, dtype=np.int64)
        if popularity.shape != (len(self.item_features),):
            raise ValueError(
                f"popularity has shape {popularity.shape}, expected ({len(self.item_features)},)"
            )
        if self.spec.needs_state and self.item_state is None:
            raise ValueError(f"features {sorted(STATE_FEATURES)} need an ItemState")
        if self.item_state is not None and self.item_state.num_items != popularity.size:
            raise ValueError("item state must have one row per item")
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
        distinct, token_id = np.unique(self._token_hash, return_inverse=True)
        self._vocabulary = distinct.size
        self._token_count = np.diff(ptr)
        row, flat = self._tokens_of(np.arange(len(self.item_features), dtype=np.int64))
        width = int(self._token_count.max()) if self._token_count.size else 0
        self._token_ids = np.full((len(self.item_features), width), distinct.size, dtype=np.int32)
        self._token_ids[row, flat - ptr[row]] = token_id
        self._log_pop = np.log1p(popularity.astype(np.float64))
        if self.item_state is not None:
            self._log_recent_pop = np.log1p(self.item_state.recent_popularity)
            self._first_seen = self.item_state.first_seen

    @property
    def num_items(self) -> int:
        return len(self._log_pop)

    def _tokens_of(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each token, position of the token in the token arrays), item by item."""
        starts = self._token_ptr[items]
        lens = self._token_ptr[items + 1] - starts
        total = int(lens.sum())
        flat = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total, dtype=np.int64)
        return np.repeat(np.arange(items.size, dtype=np.int64), lens), flat

    def numeric_raw(
        self,
        candidates: np.ndarray,
        ann_scores: np.ndarray,
        history: np.ndarray = _NO_HISTORY,
        now: float | None = None,
    ) -> np.ndarray:
        """float64 [n, len(spec.numeric)] unstandardised numeric features (training fits their
        mean/scale); `now` is the request time in epoch seconds, used rounded down to the hour
        (None: age features are 0)."""
        cand = np.asarray(candidates, dtype=np.int64)
        ann = np.asarray(ann_scores, dtype=np.float32).astype(np.float64)
        hist = np.asarray(history, dtype=np.int64)[-self.spec.max_history :]
        wanted = self.spec.numeric
        columns: dict[str, np.ndarray] = {"ann_score": ann}
        if ann.size == 0:
            return np.zeros((0, len(wanted)), dtype=np.float64)
        if "ann_gap" in wanted:
            columns["ann_gap"] = ann.max() - ann
        if "ann_rank_log" in wanted:
            # rank = how many candidates score strictly higher: independent of the list's order.
            rank = ann.size - np.searchsorted(np.sort(ann), ann, side="right")
            columns["ann_rank_log"] = np.log1p(rank.astype(np.float64))
        if "item_log_pop" in wanted:
            columns["item_log_pop"] = self._log_pop[cand]
        if "item_log_recent_pop" in wanted:
            columns["item_log_recent_pop"] = self._log_recent_pop[cand]
        if "item_log_age" in wanted or "item_log_until_first" in wanted:
            if now is None:
                days = np.zeros(cand.size, dtype=np.float64)
            else:
                hour = math.floor(now / REQUEST_TIME_RESOLUTION_S) * REQUEST_TIME_RESOLUTION_S
                days = (hour - self._first_seen[cand]) / _DAY
            columns["item_log_age"] = np.log1p(np.maximum(days, 0.0))
            columns["item_log_until_first"] = np.log1p(np.maximum(-days, 0.0))
        if "knn_session" in wanted or "knn_last" in wanted:
            sims = self._neighbour_scores(hist, cand)
            columns["knn_session"] = sims.sum(axis=0)
            columns["knn_last"] = sims[-1] if hist.size else columns["knn_session"]
        if "attr_affinity" in wanted:
            columns["attr_affinity"] = self._affinity(cand, hist)
        out = np.empty((cand.size, len(wanted)), dtype=np.float64)
        for j, name in enumerate(wanted):
            out[:, j] = columns[name]
        return out

    def _neighbour_scores(self, hist: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """[sources, n] co-occurrence similarity of each candidate to each of the last
        `knn_history` items (0 when not among that item's top-N neighbours): one
        searchsorted over the sources' sorted rows laid end to end."""
        state = self.item_state
        assert state is not None  # checked at construction
        sources = hist[-self.spec.knn_history :]
        # Row r's keys live in [r * stride, r * stride + n]: globally ascending.
        stride = self.num_items + 1
        offsets = (np.arange(sources.size, dtype=np.int64) * stride)[:, None]
        keys = (state.neighbours[sources] + offsets).ravel()
        if keys.size == 0:
            return np.zeros((0, cand.size), dtype=np.float64)
        wanted = (cand[None, :] + offsets).ravel()
        at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        found = state.neighbour_similarity[sources].ravel()[at]
        sims = np.where(keys[at] == wanted, found.astype(np.float64), 0.0)
        return sims.reshape(sources.size, cand.size)

    def _affinity(self, cand: np.ndarray, hist: np.ndarray) -> np.ndarray:
        """Mean, over the candidate's tokens, of the share of history items holding the token."""
        if hist.size == 0:
            return np.zeros(cand.size, dtype=np.float64)
        counts = np.bincount(self._token_ids[hist].ravel(), minlength=self._vocabulary + 1)
        share = counts / hist.size
        share[-1] = 0.0  # the padding slot
        return share[self._token_ids[cand]].sum(axis=1) / np.maximum(self._token_count[cand], 1)

    def _parts(
        self,
        user_features: Mapping[str, str],
        candidates: np.ndarray,
        ann_scores: np.ndarray,
        history: np.ndarray,
        now: float | None,
    ) -> _FeatureParts:
        """Hashed columns and numeric values of each candidate row (shared by encode/logits)."""
        cand = np.asarray(candidates, dtype=np.int64)
        ann = np.asarray(ann_scores, dtype=np.float32)
        hist = np.asarray(history, dtype=np.int64)
        if cand.ndim != 1 or ann.shape != cand.shape:
            raise ValueError(
                f"candidates {cand.shape} and ann_scores {ann.shape} must be equal 1-D"
            )
        for name, items in (("candidate", cand), ("history", hist)):
            if items.ndim != 1 or (
                items.size and (items.min() < 0 or items.max() >= self.num_items)
            ):
                raise ValueError(f"{name} index out of range [0, {self.num_items})")
        if not np.isfinite(ann).all():
            raise ValueError("ann_scores contains NaN or infinite values")
        spec = self.spec
        mask = np.uint64(spec.hashed_dim - 1)
        user_hash = np.asarray(
            [stable_hash(t) for t in spec.user_tokens(user_features, hist.size)], dtype=np.uint64
        )
        token_row, flat = self._tokens_of(cand)
        item_hash = self._token_hash[flat]
        mean = np.asarray(spec.numeric_mean)
        scale = np.asarray(spec.numeric_scale)
        return _FeatureParts(
            n=cand.size,
            token_row=token_row,
            cross=(_mix((user_hash[None, :] * _GOLDEN) ^ item_hash[:, None]) & mask).astype(
                np.int64
            ),
            item_only=(_mix(item_hash ^ _SALT_ITEM) & mask).astype(np.int64),
            user_only=(_mix(user_hash ^ _SALT_USER) & mask).astype(np.int64),
            numeric=(self.numeric_raw(cand, ann, hist, now) - mean) / scale,
        )

    def encode(
        self,
        user_features: Mapping[str, str],
        candidates: np.ndarray,
        ann_scores: np.ndarray,
        history: np.ndarray = _NO_HISTORY,
        now: float | None = None,
    ) -> sparse.csr_matrix:
        """CSR float64 [n, spec.dim], canonical (sorted indices, duplicates summed)."""
        spec = self.spec
        parts = self._parts(user_features, candidates, ann_scores, history, now)
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
        history: np.ndarray = _NO_HISTORY,
        now: float | None = None,
    ) -> np.ndarray:
        """encode(...) @ weights without building the matrix: the serving hot path. Same
        features, same weights; only the order of the float64 additions differs."""
        spec = self.spec
        parts = self._parts(user_features, candidates, ann_scores, history, now)
        per_token = (
            spec.cross_value * weights[parts.cross].sum(axis=1)
            + spec.token_value * weights[parts.item_only]
        )
        tokens = np.bincount(parts.token_row, weights=per_token, minlength=parts.n)
        user = spec.token_value * weights[parts.user_only].sum()
        numeric = parts.numeric @ weights[spec.hashed_dim :]
        return np.asarray(tokens + user + numeric, dtype=np.float64)
