from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from recserve.training import synthetic
from recserve.training.data import load_dataset
from recserve.training.synthetic import SyntheticSpec, generate


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.csv"))
    }


def test_deterministic_exact_size_and_loadable(tmp_path: Path) -> None:
    spec = SyntheticSpec(items=1000, users=300, events=12_000, seed=5)
    manifest = generate(spec, tmp_path / "a", fmt="csv")
    generate(spec, tmp_path / "b", fmt="csv")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert manifest["rows"] == {"events": 12_000, "items": 1000, "users": 300}
    generate(SyntheticSpec(items=1000, users=300, events=12_000, seed=6), tmp_path / "c", fmt="csv")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")

    dataset = load_dataset(tmp_path / "a")
    inter = dataset.interactions
    assert len(inter) + dataset.report.bad.get("duplicate", 0) == 12_000
    assert set(inter.context) == {"device"}
    assert (
        dataset.item_features["i0"]["genres"]
        and dataset.user_features["u0"]["gender"] in synthetic.GENDERS
    )
    counts = np.sort(np.bincount(inter.items))[::-1]
    assert counts[0] > 20 * np.median(counts)  # power-law popularity
    per_user = np.bincount(inter.users)
    assert per_user.min() >= 1 and per_user.max() > 5 * np.median(per_user)  # heavy users


def test_spec_limits() -> None:
    with pytest.raises(ValueError):
        SyntheticSpec(items=5, users=1, events=1)
    with pytest.raises(ValueError):
        SyntheticSpec(items=100, users=10, events=5)
    with pytest.raises(ValueError):
        SyntheticSpec(items=synthetic.MAX_ITEMS + 1, users=1, events=1)
