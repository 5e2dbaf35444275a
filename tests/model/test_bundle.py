from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recserve.model import BundleError, load_bundle
from recserve.model.bundle import (
    MANIFEST,
    gc_bundle_dirs,
    iter_user_seed,
    list_versions,
    newest_version,
    read_manifest,
    write_bundle,
)

from .builders import N_ITEMS, make_contents


def test_round_trip(bundle_path: Path) -> None:
    contents = make_contents()
    bundle = load_bundle(bundle_path)
    assert bundle.version == bundle_path.name
    assert bundle.item_ids == list(contents.item_ids)
    assert bundle.item_index["item-7"] == 7
    np.testing.assert_array_equal(bundle.input_vectors, contents.input_vectors)
    assert bundle.query == contents.query and bundle.num_candidates == 50
    np.testing.assert_array_equal(bundle.ranker.weights, contents.ranker.weights)
    assert bundle.ranker.encoder.spec == contents.ranker.encoder.spec
    order = np.argsort(-contents.popularity, kind="stable")
    np.testing.assert_array_equal(bundle.popular, order)  # fewer than 1000 items: all of them
    genres = contents.item_features[3]["genre"]
    assert isinstance(genres, list) and bundle.item_feature_values(3, "genre") == frozenset(genres)
    assert bundle.item_feature_values(3, "nope") == frozenset()
    found, _ = bundle.index.search_batched(contents.input_vectors[:2], 5)
    np.testing.assert_array_equal(
        found, contents.index.search_batched(contents.input_vectors[:2], 5)[0]
    )
    assert list(iter_user_seed(bundle)) == [
        ("u1", ["item-1", "item-2"], {"age": "30", "gender": "F"})
    ]
    manifest = bundle.manifest
    assert set(manifest["files"]) >= {
        "item_ids.json",
        "input_vectors.npy",
        "ranker_weights.npy",
        "eval.md",
    }
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())


def test_partial_load(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path, parts={"vectors"})
    assert bundle.input_vectors.shape == (N_ITEMS, 16)
    with pytest.raises(BundleError, match="'index' was not loaded"):
        _ = bundle.index
    with pytest.raises(BundleError, match="unknown bundle parts"):
        load_bundle(bundle_path, parts={"everything"})


def _copy(bundle_path: Path, tmp_path: Path) -> Path:
    target = tmp_path / bundle_path.name
    shutil.copytree(bundle_path, target)
    return target


@pytest.mark.parametrize(
    ("name", "part"),
    [("input_vectors.npy", "vectors"), ("ranker_weights.npy", "ranker"), ("scann/dataset.npy", "index"),
     ("item_ids.json", None), ("item_features.json", "ranker")],
)  # fmt: skip
def test_tampered_file_is_refused(
    bundle_path: Path, tmp_path: Path, name: str, part: str | None
) -> None:
    copy = _copy(bundle_path, tmp_path)
    target = copy / name
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256 mismatch") as info:
        load_bundle(copy, parts={part} if part else set())
    assert name.rsplit("/", maxsplit=1)[-1] in str(info.value)
    if part:  # a part that is not loaded is not checked
        load_bundle(copy, parts=set())


def test_edited_manifest_is_refused(bundle_path: Path, tmp_path: Path) -> None:
    copy = _copy(bundle_path, tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["metrics"] = {"pipeline": {"hr@10": 0.99}}
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="content hash mismatch"):
        load_bundle(copy)


def test_missing_and_extra_files_are_refused(bundle_path: Path, tmp_path: Path) -> None:
    copy = _copy(bundle_path, tmp_path)
    (copy / "scann" / "scann_docids.pkl").write_bytes(b"not what you think")
    with pytest.raises(BundleError, match="not in the manifest"):
        load_bundle(copy)
    (copy / "scann" / "scann_docids.pkl").unlink()
    (copy / "ranker.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "does-not-exist")


def test_directory_must_match_version(bundle_path: Path, tmp_path: Path) -> None:
    moved = tmp_path / "renamed"
    shutil.copytree(bundle_path, moved)
    with pytest.raises(BundleError, match="does not match"):
        read_manifest(moved)


def test_versions_and_gc(tmp_path: Path) -> None:
    clock = iter([1_800_000_000.0 + i for i in range(4)])
    paths = [
        write_bundle(tmp_path, make_contents(seed=i), now=lambda: next(clock)) for i in range(4)
    ]
    assert list_versions(tmp_path) == [p.name for p in paths]
    assert newest_version(tmp_path) == paths[-1].name
    stale = tmp_path / ".tmp-crashed"
    stale.mkdir()
    removed = gc_bundle_dirs(tmp_path, keep=2, protect=[paths[0].name], stale_tmp_seconds=-1)
    assert set(removed) == {paths[1].name, ".tmp-crashed"}
    assert list_versions(tmp_path) == [paths[0].name, paths[2].name, paths[3].name]
    with pytest.raises(BundleError, match="no bundle"):
        newest_version(tmp_path / "empty")
