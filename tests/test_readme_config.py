"""The README's configuration table names every variable each service reads, with the default the
code uses: the table is checked against the config dataclasses, not the other way round."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from recserve.candidates.config import CandidatesConfig
from recserve.embedding_store.config import EmbeddingStoreConfig
from recserve.gateway.config import GatewayConfig
from recserve.ranking.config import RankingConfig
from recserve.runtime.config import Env

README = Path(__file__).resolve().parents[1] / "README.md"
CONFIGS = {
    "gateway": GatewayConfig,
    "embedding_store": EmbeddingStoreConfig,
    "candidates": CandidatesConfig,
    "ranking": RankingConfig,
}


class RecordingEnv(Env):
    """An empty environment that remembers the default of every variable read."""

    def __init__(self) -> None:
        super().__init__({})
        self.defaults: dict[str, Any] = {}

    def _record(self, name: str, default: Any) -> None:
        self.defaults.setdefault("RECSERVE_" + name, default)

    def string(self, name: str, default: str) -> str:
        self._record(name, default)
        return super().string(name, default)

    def optional_string(self, name: str) -> str | None:
        self._record(name, None)
        return super().optional_string(name)

    def integer(self, name: str, default: int, **bounds: int) -> int:  # type: ignore[override]
        self._record(name, default)
        return super().integer(name, default, **bounds)

    def number(self, name: str, default: float, **bounds: float) -> float:  # type: ignore[override]
        self._record(name, default)
        return super().number(name, default, **bounds)

    def flag(self, name: str, default: bool) -> bool:
        self._record(name, default)
        return super().flag(name, default)


def read_by_code() -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for service, config in CONFIGS.items():
        env = RecordingEnv()
        config.from_env(env)
        found.update({(service, name): default for name, default in env.defaults.items()})
    return found


def documented() -> dict[tuple[str, str], str]:
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[tuple[str, str], str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`RECSERVE_"):
            continue
        names = re.findall(r"`([A-Z0-9_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), f"README row {line!r}: one default per variable"
        services = list(CONFIGS) if cells[2] == "all" else [s.strip() for s in cells[2].split(",")]
        for service in services:
            assert service in CONFIGS, f"README row {line!r} names unknown service {service!r}"
            for name, default in zip(names, defaults, strict=True):
                key = (service, name)
                assert key not in rows, f"{name} for {service} is documented twice"
                rows[key] = default
    return rows


def same(code: Any, doc: str) -> bool:
    if code is None:
        return doc == "unset"
    if isinstance(code, bool):
        return doc == str(code).lower()
    if isinstance(code, int | float):
        try:
            return float(doc.replace(",", "")) == float(code)
        except ValueError:
            return False
    return doc == str(code)


def test_every_variable_read_is_documented_with_its_default() -> None:
    docs = documented()
    wrong = {
        key: (code, docs.get(key, "<missing>"))
        for key, code in read_by_code().items()
        if key not in docs or not same(code, docs[key])
    }
    assert not wrong, f"README config table disagrees with the code (code, README): {wrong}"


def test_every_documented_variable_is_read() -> None:
    code = read_by_code()
    extra = sorted(key for key in documented() if key not in code)
    assert not extra, f"README documents variables the service does not read: {extra}"


@pytest.mark.parametrize("doc", ["2", "unset", "x"])
def test_comparison_can_fail(doc: str) -> None:
    assert not same(1, doc)
