"""A directory written by `python -m recserve.training synth`: an event log and item and user
feature tables, named in its synthetic.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from recserve.training.data.eventlog import load_event_log
from recserve.training.data.features import load_feature_table, single_valued
from recserve.training.data.model import DEFAULT_LOAD_OPTIONS, DataError, Dataset, LoadOptions

SYNTHETIC_MANIFEST = "synthetic.json"


def load_synthetic_dir(
    path: str | Path,
    options: LoadOptions = DEFAULT_LOAD_OPTIONS,
    say: Callable[[str], None] | None = None,
) -> Dataset:
    """A directory written by `python -m recserve.training synth`."""
    path = Path(path)
    manifest_path = path / SYNTHETIC_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"not a synthetic dataset directory: {exc}", file=manifest_path) from None
    context = tuple(
        c for c in manifest.get("context_columns", []) if c not in options.context_columns
    )
    merged = LoadOptions(
        max_bad_fraction=options.max_bad_fraction,
        min_weight=options.min_weight,
        event_types=options.event_types,
        context_columns=(*options.context_columns, *context),
    )
    interactions, report = load_event_log(path / files["events"], merged, say)
    items = load_feature_table(path / files["items"], "item")
    users = single_valued(load_feature_table(path / files["users"], "user"))
    return Dataset(f"synthetic-{manifest.get('seed', 0)}", interactions, items, users, report)
