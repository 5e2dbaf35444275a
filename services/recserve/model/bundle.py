"""The model bundle: a versioned, checksummed directory written by training, read by serving.

Layout of ``<bundles_root>/<version>/`` (version = UTC time + short content hash)::

    manifest.json          parameters, data fingerprint, metrics, ANN report, SHA-256 of every file
    item_ids.json          external item ids; position = internal item index      (core)
    popular.json           most popular MAX_POPULAR_ITEMS ids, unavailable left out (core)
    item_popularity.npy    int64 event counts per item                              (core)
    input_vectors.npy      float32 [n, d] word2vec input vectors (Redis holds them)  (vectors)
    scoring_vectors.npy    float32 [n, d] the index's vectors, if not the input ones (vectors)
    attribute_*.{json,npy} mean vectors per item attribute value, both spaces       (vectors)
    scann/                 ScaNN searcher over the scoring vectors (its own format)  (index)
    ranker.json            feature spec + intercept                                 (ranker)
    ranker_weights.npy     float64 LR weights                                       (ranker)
    item_neighbours.npy, item_neighbour_similarity.npy, item_recent_popularity.npy,
    item_first_seen.npy    the ranker's per-item state (`ItemState`), if it uses one (ranker)
    item_features.json     raw item features, one object per item index             (ranker)
    users.jsonl            users' recent items (oldest first) + features, seeds Redis (users)
    eval.json, eval.md     offline evaluation report                                (report)

Nothing a server loads is a pickle: numpy arrays load with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from recserve.model.ann import AnnConfig, AnnIndex
from recserve.model.attribute_means import AttributeMeans
from recserve.model.features import FeatureEncoder, FeatureSpec, ItemState, RawValue
from recserve.model.query import QueryConfig
from recserve.model.ranker import Ranker

FORMAT = "recserve-bundle/1"
MANIFEST = "manifest.json"
ITEM_IDS = "item_ids.json"
POPULAR = "popular.json"
POPULARITY = "item_popularity.npy"
INPUT_VECTORS = "input_vectors.npy"
SCORING_VECTORS = "scoring_vectors.npy"
ATTRIBUTE_VALUES = "attribute_values.json"
ATTRIBUTE_MEANS_INPUT = "attribute_means_input.npy"
ATTRIBUTE_MEANS_SCORING = "attribute_means_scoring.npy"
ATTRIBUTE_COUNTS = "attribute_counts.npy"
INDEX_DIR = "scann"
RANKER_SPEC = "ranker.json"
RANKER_WEIGHTS = "ranker_weights.npy"
ITEM_STATE = {
    "neighbours": "item_neighbours.npy",
    "neighbour_similarity": "item_neighbour_similarity.npy",
    "recent_popularity": "item_recent_popularity.npy",
    "first_seen": "item_first_seen.npy",
}
ITEM_FEATURES = "item_features.json"
USERS = "users.jsonl"
EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"

PARTS = frozenset({"index", "ranker", "vectors"})
# popular.json, the cold-start fallback list, holds at most this many of the most popular items.
MAX_POPULAR_ITEMS = 1000
VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
_TMP_PREFIX = ".tmp-"
_T = TypeVar("_T")


class BundleError(Exception):
    """A bundle that cannot be used: missing, incomplete, tampered with or malformed."""


@dataclass(eq=False, repr=False)
class Bundle:
    """A loaded bundle; parts that were not requested raise BundleError when accessed."""

    path: Path
    manifest: dict[str, Any]
    item_ids: list[str]
    popular: np.ndarray
    popularity: np.ndarray
    query: QueryConfig
    _input_vectors: np.ndarray | None = None
    _scoring_vectors: np.ndarray | None = None
    _attribute_means: AttributeMeans | None = None
    _index: AnnIndex | None = None
    _ranker: Ranker | None = None
    _item_features: list[dict[str, RawValue]] | None = None
    item_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.item_index = {item_id: i for i, item_id in enumerate(self.item_ids)}

    def __repr__(self) -> str:
        return f"Bundle({self.version}, {len(self.item_ids)} items, dim {self.dim}, path={str(self.path)!r})"

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def num_candidates(self) -> int:
        return int(self.manifest["serving"]["num_candidates"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def input_vectors(self) -> np.ndarray:
        return _require(self._input_vectors, "vectors", self.version)

    @property
    def scoring_vectors(self) -> np.ndarray:
        """The vectors the index scores queries against (row = item index)."""
        if self._scoring_vectors is not None:
            return self._scoring_vectors
        return self.input_vectors

    @property
    def attribute_means(self) -> AttributeMeans | None:
        """Mean vectors per attribute value (loaded with "vectors"); None in bundles written
        before cold start existed, or with no item attributes."""
        _require(self._input_vectors, "vectors", self.version)
        return self._attribute_means

    @property
    def index(self) -> AnnIndex:
        return _require(self._index, "index", self.version)

    @property
    def ranker(self) -> Ranker:
        return _require(self._ranker, "ranker", self.version)

    @property
    def item_features(self) -> list[dict[str, RawValue]]:
        return _require(self._item_features, "ranker", self.version)

    def item_feature_values(self, index: int, feature: str) -> frozenset[str]:
        """Raw values of one item feature (e.g. its genres), for filters; empty if absent."""
        raw = self.item_features[index].get(feature)
        if raw is None:
            return frozenset()
        return frozenset([raw] if isinstance(raw, str) else raw)


def _require(value: _T | None, part: str, version: str) -> _T:
    if value is None:
        raise BundleError(
            f"bundle {version}: part {part!r} was not loaded (pass parts={{{part!r}}})"
        )
    return value


# ---------------------------------------------------------------------------------- loading


def load_bundle(path: str | Path, *, parts: set[str] | None = None) -> Bundle:
    """Loads and verifies a bundle; `parts` ⊆ {"index", "ranker", "vectors"}, None = all.

    Every file of the core and of the requested parts is checked against the SHA-256 in the
    manifest, and the manifest against the content hash in its version.
    """
    root = Path(path)
    wanted = set(PARTS) if parts is None else set(parts)
    if unknown := wanted - PARTS:
        raise BundleError(f"unknown bundle parts {sorted(unknown)}; choose from {sorted(PARTS)}")
    manifest = read_manifest(root)
    groups: Mapping[str, list[str]] = manifest["parts"]
    for part in ["core", *sorted(wanted)]:
        _verify_files(root, manifest, groups.get(part, []))
    if "index" in wanted:
        _refuse_unlisted(root / INDEX_DIR, root, groups.get("index", []))

    item_ids = _load_json(root, ITEM_IDS)
    if not isinstance(item_ids, list) or not all(isinstance(i, str) for i in item_ids):
        raise BundleError(f"{root / ITEM_IDS}: expected a JSON list of strings")
    n, dim = len(item_ids), int(manifest["dim"])
    if n != int(manifest["item_count"]) or len(set(item_ids)) != n:
        raise BundleError(
            f"{root / ITEM_IDS}: {n} ids (duplicates?) but manifest says {manifest['item_count']}"
        )
    index_of = {item_id: i for i, item_id in enumerate(item_ids)}
    popular_ids = _load_json(root, POPULAR)
    try:
        popular = np.asarray([index_of[i] for i in popular_ids], dtype=np.int32)
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{root / POPULAR}: unknown item id {exc}") from None
    popularity = _load_npy(root, POPULARITY, (n,), np.int64)

    bundle = Bundle(
        path=root,
        manifest=manifest,
        item_ids=item_ids,
        popular=popular,
        popularity=popularity,
        query=QueryConfig.from_dict(manifest["query"]),
    )
    if "vectors" in wanted:
        bundle._input_vectors = _load_npy(root, INPUT_VECTORS, (n, dim), np.float32)
        listed = set(groups.get("vectors", []))
        if SCORING_VECTORS in listed:
            bundle._scoring_vectors = _load_npy(root, SCORING_VECTORS, (n, dim), np.float32)
        if ATTRIBUTE_VALUES in listed:
            bundle._attribute_means = _load_attribute_means(root, dim)
    if "index" in wanted:
        ann = manifest["ann"]
        try:
            bundle._index = AnnIndex.load(
                root / INDEX_DIR, size=n, dim=dim, config=AnnConfig.from_dict(ann["config"])
            )
        except (RuntimeError, ValueError) as exc:
            raise BundleError(
                f"{root / INDEX_DIR}: cannot load the ScaNN searcher: {exc}"
            ) from None
    if "ranker" in wanted:
        features = _load_json(root, ITEM_FEATURES)
        if not isinstance(features, list) or len(features) != n:
            raise BundleError(f"{root / ITEM_FEATURES}: expected a list of {n} objects")
        bundle._item_features = features
        spec_doc = _load_json(root, RANKER_SPEC)
        try:
            spec = FeatureSpec.from_dict(spec_doc["features"])
            state = None
            if "item_state_neighbours" in spec_doc:
                top = int(spec_doc["item_state_neighbours"])
                state = ItemState(
                    _load_npy(root, ITEM_STATE["neighbours"], (n, top), np.int32),
                    _load_npy(root, ITEM_STATE["neighbour_similarity"], (n, top), np.float32),
                    _load_npy(root, ITEM_STATE["recent_popularity"], (n,), np.float64),
                    _load_npy(root, ITEM_STATE["first_seen"], (n,), np.float64),
                )
            encoder = FeatureEncoder(spec, features, popularity, state)
            weights = _load_npy(root, RANKER_WEIGHTS, (spec.dim,), np.float64)
            bundle._ranker = Ranker(encoder, weights, float(spec_doc["intercept"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{root / RANKER_SPEC}: invalid ranker: {exc}") from None
    return bundle


def _load_attribute_means(root: Path, dim: int) -> AttributeMeans:
    values = _load_json(root, ATTRIBUTE_VALUES)
    if not isinstance(values, list) or not all(
        isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in values
    ):
        raise BundleError(f"{root / ATTRIBUTE_VALUES}: expected a list of [name, value] pairs")
    m = len(values)
    return AttributeMeans(
        [(name, value) for name, value in values],
        _load_npy(root, ATTRIBUTE_MEANS_INPUT, (m, dim), np.float32),
        _load_npy(root, ATTRIBUTE_MEANS_SCORING, (m, dim), np.float32),
        _load_npy(root, ATTRIBUTE_COUNTS, (m,), np.int64),
    )


def read_manifest(root: Path) -> dict[str, Any]:
    manifest = _load_json(root, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{root / MANIFEST}: not a {FORMAT} manifest")
    for key in ("version", "content_sha256", "files", "parts", "item_count", "dim", "query"):
        if key not in manifest:
            raise BundleError(f"{root / MANIFEST}: missing field {key!r}")
    version = manifest["version"]
    expected = _content_hash(manifest)
    if manifest["content_sha256"] != expected or not str(version).endswith(expected[:8]):
        raise BundleError(
            f"{root / MANIFEST}: content hash mismatch (manifest edited after the bundle was written?)"
        )
    if root.name != version:
        raise BundleError(f"{root}: directory name does not match the bundle version {version}")
    return manifest


def _verify_files(root: Path, manifest: Mapping[str, Any], names: Sequence[str]) -> None:
    files = manifest["files"]
    for name in names:
        entry = files.get(name)
        target = root / name
        if entry is None:
            raise BundleError(f"{root / MANIFEST}: no checksum for {name}")
        if not target.is_file():
            raise BundleError(f"{target}: missing from bundle {manifest['version']}")
        digest = _sha256(target)
        if digest != entry["sha256"]:
            raise BundleError(
                f"{target}: SHA-256 mismatch (expected {entry['sha256'][:12]}…, got {digest[:12]}…); "
                "the bundle was modified or corrupted"
            )


def _refuse_unlisted(directory: Path, root: Path, listed: Sequence[str]) -> None:
    present = {p.relative_to(root).as_posix() for p in directory.rglob("*") if p.is_file()}
    if extra := present - set(listed):
        raise BundleError(f"{directory}: files not in the manifest: {sorted(extra)}")


def _load_json(root: Path, name: str) -> Any:
    target = root / name
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{target}: missing (is {root} a bundle directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{target}: unreadable JSON: {exc}") from None


def _load_npy(root: Path, name: str, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    target = root / name
    try:
        array = np.load(target, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{target}: unreadable array: {exc}") from None
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise BundleError(
            f"{target}: {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}{list(shape)}"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BundleError(f"{target}: contains NaN or infinite values")
    return array


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_hash(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k not in ("version", "content_sha256")}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def iter_user_seed(bundle: Bundle) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(user id, recent item ids oldest first, raw user features) from users.jsonl, verified."""
    names = bundle.manifest["parts"].get("users", [])
    if not names:
        return
    _verify_files(bundle.path, bundle.manifest, names)
    with (bundle.path / USERS).open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            yield str(row["user_id"]), [str(i) for i in row["events"]], dict(row["features"])


# ---------------------------------------------------------------------------------- writing


@dataclass
class BundleContents:
    """Everything training hands to `write_bundle`."""

    item_ids: Sequence[str]
    input_vectors: np.ndarray
    popularity: np.ndarray
    query: QueryConfig
    num_candidates: int
    index: AnnIndex
    ranker: Ranker
    item_features: Sequence[Mapping[str, RawValue]]
    manifest: dict[str, Any] = field(default_factory=dict)
    # None: the index scores the input vectors.
    scoring_vectors: np.ndarray | None = None
    attribute_means: AttributeMeans | None = None
    users: Sequence[tuple[str, Sequence[str], Mapping[str, str]]] = ()
    reports: Mapping[str, str] = field(default_factory=dict)
    # Item ids left out of popular.json (items the live catalog marks unavailable).
    popular_exclude: Collection[str] = frozenset()


def popular_order(popularity: np.ndarray) -> np.ndarray:
    """Most popular first, ties by item index (stable)."""
    return np.argsort(-np.asarray(popularity, dtype=np.int64), kind="stable").astype(np.int32)


def write_bundle(
    root: str | Path, contents: BundleContents, *, now: Callable[[], float] = time.time
) -> Path:
    """Writes into a temporary directory under `root`, then renames it to the version."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    item_ids = list(contents.item_ids)
    n = len(item_ids)
    vectors = np.ascontiguousarray(contents.input_vectors, dtype=np.float32)
    popularity = np.asarray(contents.popularity, dtype=np.int64)
    if vectors.shape[0] != n or popularity.shape != (n,) or len(contents.item_features) != n:
        raise ValueError(
            "item_ids, input_vectors, popularity and item_features must have one row per item"
        )
    if len(set(item_ids)) != n:
        raise ValueError("item ids must be unique")
    if contents.ranker.encoder.num_items != n or contents.index.size != n:
        raise ValueError("the ranker and index must cover the same items as the bundle")

    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        parts: dict[str, list[str]] = {
            "core": [ITEM_IDS, POPULAR, POPULARITY],
            "vectors": [INPUT_VECTORS],
            "ranker": [RANKER_SPEC, RANKER_WEIGHTS, ITEM_FEATURES],
        }
        _write_json(tmp / ITEM_IDS, item_ids)
        popular = [item_ids[i] for i in popular_order(popularity).tolist()]
        excluded = set(contents.popular_exclude)
        _write_json(tmp / POPULAR, [i for i in popular if i not in excluded][:MAX_POPULAR_ITEMS])
        np.save(tmp / POPULARITY, popularity)
        np.save(tmp / INPUT_VECTORS, vectors)
        if contents.scoring_vectors is not None:
            scoring = np.ascontiguousarray(contents.scoring_vectors, dtype=np.float32)
            if scoring.shape != vectors.shape:
                raise ValueError("scoring_vectors must have the shape of input_vectors")
            np.save(tmp / SCORING_VECTORS, scoring)
            parts["vectors"].append(SCORING_VECTORS)
        if contents.attribute_means is not None:
            means = contents.attribute_means
            _write_json(tmp / ATTRIBUTE_VALUES, [list(t) for t in means.values])
            np.save(tmp / ATTRIBUTE_MEANS_INPUT, means.input.astype(np.float32))
            np.save(tmp / ATTRIBUTE_MEANS_SCORING, means.scoring.astype(np.float32))
            np.save(tmp / ATTRIBUTE_COUNTS, means.counts.astype(np.int64))
            parts["vectors"] += [
                ATTRIBUTE_VALUES,
                ATTRIBUTE_MEANS_INPUT,
                ATTRIBUTE_MEANS_SCORING,
                ATTRIBUTE_COUNTS,
            ]
        contents.index.serialize(tmp / INDEX_DIR)
        parts["index"] = sorted(
            p.relative_to(tmp).as_posix() for p in (tmp / INDEX_DIR).rglob("*") if p.is_file()
        )
        ranker = contents.ranker
        spec_doc: dict[str, Any] = {
            "features": ranker.encoder.spec.to_dict(),
            "intercept": ranker.intercept,
        }
        if (state := ranker.encoder.item_state) is not None:
            spec_doc["item_state_neighbours"] = int(state.neighbours.shape[1])
            for name, file in ITEM_STATE.items():
                np.save(tmp / file, getattr(state, name))
                parts["ranker"].append(file)
        _write_json(tmp / RANKER_SPEC, spec_doc)
        np.save(tmp / RANKER_WEIGHTS, ranker.weights)
        _write_json(tmp / ITEM_FEATURES, [dict(f) for f in contents.item_features])
        if contents.users:
            with (tmp / USERS).open("w", encoding="utf-8") as fh:
                for user_id, events, features in contents.users:
                    row = {"user_id": user_id, "events": list(events), "features": dict(features)}
                    fh.write(json.dumps(row, separators=(",", ":")) + "\n")
            parts["users"] = [USERS]
        for name, text in contents.reports.items():
            (tmp / name).write_text(text, encoding="utf-8")
        parts["report"] = sorted(contents.reports)

        created = datetime.fromtimestamp(now(), tz=UTC)
        manifest: dict[str, Any] = {
            **contents.manifest,
            "format": FORMAT,
            "created_at": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "item_count": n,
            "dim": int(vectors.shape[1]),
            "query": contents.query.to_dict(),
            "serving": {"num_candidates": contents.num_candidates},
            "parts": parts,
            "files": {
                name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
                for names in parts.values()
                for name in names
            },
        }
        manifest["ann"] = {**manifest.get("ann", {}), "config": contents.index.config.to_dict()}
        content = _content_hash(manifest)
        version = f"{created.strftime('%Y%m%dT%H%M%SZ')}-{content[:8]}"
        manifest["content_sha256"] = content
        manifest["version"] = version
        _write_json(tmp / MANIFEST, manifest, indent=2)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
        final = root / version
        # rename() is atomic: readers see no directory or a complete one.
        os.rename(tmp, final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_json(path: Path, data: Any, *, indent: int | None = None) -> None:
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------- versions on disk


def list_versions(root: str | Path) -> list[str]:
    """Complete bundle versions under root, oldest first (versions sort by time)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and VERSION_RE.match(p.name) and (p / MANIFEST).is_file()
    )


def newest_version(root: str | Path) -> str:
    versions = list_versions(root)
    if not versions:
        raise BundleError(
            f"{root}: no bundle found (run `python -m recserve.training train --bundles {root}`)"
        )
    return versions[-1]


def gc_bundle_dirs(
    root: str | Path, *, keep: int, protect: Sequence[str] = (), stale_tmp_seconds: float = 3600.0
) -> list[str]:
    """Deletes all but the newest `keep` versions (never those in `protect`), and temporary
    directories left by interrupted writes. Returns what was removed."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    root = Path(root)
    versions = list_versions(root)
    doomed = [v for v in versions[:-keep] if v not in set(protect)]
    for version in doomed:
        shutil.rmtree(root / version)
    if root.is_dir():
        cutoff = time.time() - stale_tmp_seconds
        for tmp in root.glob(f"{_TMP_PREFIX}*"):
            if tmp.is_dir() and tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp, ignore_errors=True)
                doomed.append(tmp.name)
    return doomed
