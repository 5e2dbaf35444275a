"""Source-level guards: nothing in the package deserializes code-bearing formats, and the
settings that carry secrets never reach a log call. Behaviour is tested elsewhere:
tests/model/test_bundle.py (tampered, edited, missing or extra bundle files refused before
loading; arrays loaded with allow_pickle=False), tests/security/test_stack_security.py (a planted
pickle is neither loaded nor unpickled by a running service)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "recserve"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "/v1/" not in str(p))

FORBIDDEN = [
    (
        re.compile(r"\bpickle\b|\bcPickle\b|\bdill\b|\bjoblib\b|\bshelve\b|\bmarshal\.loads?\b"),
        "pickle-like deserialization",
    ),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(..., allow_pickle=True)"),
    (re.compile(r"\byaml\.(unsafe_)?load\("), "yaml.load (use yaml.safe_load)"),
    (re.compile(r"(?<![\w.])(eval|exec)\("), "eval/exec"),
    (re.compile(r"\bsubprocess\.[a-z_]+\([^)]*shell\s*=\s*True"), "shell=True"),
]


def code_lines(path: Path) -> list[tuple[int, str]]:
    """Source lines without comments and docstrings (which may name what is forbidden)."""
    text = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docstrings.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return [
        (n, line.split("#", 1)[0])
        for n, line in enumerate(text.splitlines(), start=1)
        if n not in docstrings
    ]


def test_sources_were_found() -> None:
    assert len(SOURCES) > 30


def test_no_code_bearing_deserialization_or_eval() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{n}: {why}: {line.strip()}"
        for path in SOURCES
        for n, line in code_lines(path)
        for pattern, why in FORBIDDEN
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


def test_secrets_are_never_passed_to_log_calls() -> None:
    """auth_token / password / key settings are not arguments of a logging call."""
    secret = re.compile(r"auth_token|password|_key_file|private_key|authorization", re.IGNORECASE)
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr
                in {"debug", "info", "warning", "error", "exception", "critical", "log"}
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"log", "logger", "logging", "LOG"}
            ):
                source = ast.unparse(node)
                if secret.search(source):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {source}")
    assert not offenders, "\n".join(offenders)
