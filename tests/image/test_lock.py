"""requirements.lock (what the Dockerfile installs, `make lock`) covers pyproject's runtime
dependencies: each is pinned there at a version its specifier allows, and every pin carries
hashes (the Dockerfile installs with --require-hashes). No network: `pip check` in the image
build checks the rest of the dependency tree."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import REPO_ROOT

# `name==version \` followed by its `--hash=sha256:...` lines.
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", re.M
)


def project() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def pins() -> dict[str, tuple[str, int]]:
    """Canonical name -> (version, number of hashes)."""
    text = (REPO_ROOT / "requirements.lock").read_text()
    return {canonicalize_name(m[1]): (m[2], m[3].count("--hash=")) for m in PIN.finditer(text)}


def test_every_runtime_dependency_is_pinned_at_an_allowed_version() -> None:
    locked = pins()
    for spec in project()["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(locked[name][0], prereleases=True), (
            f"requirements.lock pins {req.name}=={locked[name][0]}, pyproject wants {spec}: "
            "run `make lock`"
        )


def test_every_pin_has_hashes_and_no_extra_is_locked() -> None:
    locked = pins()
    assert locked, "no pins parsed from requirements.lock"
    assert all(n for _, n in locked.values()), [k for k, (_, n) in locked.items() if not n]
    extras = project()["optional-dependencies"]
    cluster_only = {canonicalize_name(Requirement(s).name) for s in extras["cluster"]}
    assert not cluster_only & set(locked), "the cluster extra must stay out of the image lock"
