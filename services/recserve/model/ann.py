"""ScaNN searcher over the item scoring vectors (dot product), built, saved and loaded here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

# Very large k has crashed ScaNN (reported upstream), and nothing here needs more.
MAX_K = 1000

AnnKind = Literal["brute_force", "ah", "tree_ah"]


class _Searcher(Protocol):
    def search_batched(
        self,
        queries: np.ndarray,
        final_num_neighbors: int | None = None,
        pre_reorder_num_neighbors: int | None = None,
        leaves_to_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def serialize(self, artifacts_dir: str, relative_path: bool = False) -> None: ...


@dataclass(frozen=True)
class AnnConfig:
    """What to build (kind, leaves, AH) and how to search it (leaves_to_search, reorder).

    The search-time fields are passed on every call, so tuning them needs no rebuild.
    AH scores max(k, ``reorder_num_neighbors``) neighbours, which are then re-scored exactly;
    keeping that count fixed makes the top-k of a query a prefix of its top-k' for any
    k <= k' <= reorder_num_neighbors, so services asking for slightly different k agree.
    """

    kind: AnnKind = "brute_force"
    num_leaves: int = 0
    leaves_to_search: int = 0
    spherical: bool = False
    ah_dims_per_block: int = 2
    ah_threshold: float = 0.2
    reorder_num_neighbors: int = 0
    training_sample_size: int = 100_000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnnConfig:
        kind = data["kind"]
        if kind not in ("brute_force", "ah", "tree_ah"):
            raise ValueError(f"unknown ANN kind {kind!r}")
        return cls(
            kind=kind,
            num_leaves=int(data.get("num_leaves", 0)),
            leaves_to_search=int(data.get("leaves_to_search", 0)),
            spherical=bool(data.get("spherical", False)),
            ah_dims_per_block=int(data.get("ah_dims_per_block", 2)),
            ah_threshold=float(data.get("ah_threshold", 0.2)),
            reorder_num_neighbors=int(data.get("reorder_num_neighbors", 0)),
            training_sample_size=int(data.get("training_sample_size", 100_000)),
        )


class AnnIndex:
    """Thread-safe for concurrent searches (ScaNN releases the GIL); never mutated after build."""

    def __init__(self, searcher: _Searcher, *, size: int, dim: int, config: AnnConfig):
        self._searcher = searcher
        self.size = size
        self.dim = dim
        self.config = config

    @classmethod
    def build(
        cls, vectors: np.ndarray, config: AnnConfig, *, training_threads: int = 0
    ) -> AnnIndex:
        from scann.scann_ops.py import scann_ops_pybind

        db = _check_vectors(vectors, "item vectors")
        n, dim = db.shape
        builder = scann_ops_pybind.builder(db, min(100, n), "dot_product")
        builder.set_n_training_threads(training_threads)
        if config.kind == "tree_ah":
            builder = builder.tree(
                num_leaves=config.num_leaves,
                num_leaves_to_search=config.leaves_to_search,
                training_sample_size=min(n, config.training_sample_size),
                spherical=config.spherical,
            )
        if config.kind == "brute_force":
            builder = builder.score_brute_force()
        else:
            builder = builder.score_ah(
                config.ah_dims_per_block,
                anisotropic_quantization_threshold=config.ah_threshold,
                training_sample_size=min(n, config.training_sample_size),
            ).reorder(min(n, 200))
        # No docids: results are row numbers of `vectors`, which are the bundle's item indices
        # (and ScaNN would keep and mutate a docids list, and pickle it on serialize).
        return cls(builder.build(), size=n, dim=dim, config=config)

    @classmethod
    def load(cls, directory: Path, *, size: int, dim: int, config: AnnConfig) -> AnnIndex:
        from scann.scann_ops.py import scann_ops_pybind

        searcher = scann_ops_pybind.load_searcher(str(directory), assets_backcompat_shim=False)
        return cls(searcher, size=size, dim=dim, config=config)

    def serialize(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # Relative asset paths: the bundle directory is renamed after writing.
        self._searcher.serialize(str(directory), relative_path=True)

    def with_config(self, config: AnnConfig) -> AnnIndex:
        """Same searcher, other search-time parameters (used while tuning)."""
        if config.kind != self.config.kind or config.num_leaves != self.config.num_leaves:
            raise ValueError("only search-time parameters can change without a rebuild")
        return AnnIndex(self._searcher, size=self.size, dim=self.dim, config=config)

    def search_batched(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by dot product: (int32 [b, k] item indices, float32 [b, k] scores).

        k is capped at min(MAX_K, size). Rows ScaNN cannot fill are padded with index -1 and
        score -inf.
        """
        q = _check_vectors(queries, "queries", dim=self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, MAX_K, self.size)
        if q.shape[0] == 0:
            return np.zeros((0, k), dtype=np.int32), np.zeros((0, k), dtype=np.float32)
        cfg = self.config
        pre = None
        leaves = None
        if cfg.kind != "brute_force":
            pre = min(self.size, max(k, cfg.reorder_num_neighbors))
        if cfg.kind == "tree_ah":
            leaves = cfg.leaves_to_search
        idx, dist = self._searcher.search_batched(
            q, final_num_neighbors=k, pre_reorder_num_neighbors=pre, leaves_to_search=leaves
        )
        indices = np.full((q.shape[0], k), -1, dtype=np.int32)
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        width = min(k, np.asarray(idx).shape[1]) if np.asarray(idx).ndim == 2 else 0
        indices[:, :width] = np.asarray(idx)[:, :width].astype(np.int32)
        scores[:, :width] = np.asarray(dist)[:, :width]
        return indices, scores


def _check_vectors(vectors: np.ndarray, what: str, *, dim: int | None = None) -> np.ndarray:
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{what} must be 2-D [n, d], got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, index has {dim}")
    # A NaN reaching ScaNN can crash the process: refuse it here.
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return array
