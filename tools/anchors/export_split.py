"""Writes the training pipeline's exact chronological order as a RecBole atomic file.

Runs in the product venv: the events are loaded and sorted by `recserve.training` itself, and
each event's timestamp is replaced by its position in that order (an integer below 2**24, so
RecBole's float32 timestamps keep every event distinct and its "TO" leave-one-out split is
ours: last event per user = test, second-to-last = validation).

    .venv/bin/python -m tools.anchors.export_split --out build/anchors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recserve.training.config import TrainConfig
from recserve.training.pipeline import load_and_split

DATASET = "ml100k_exact"


def export(config: TrainConfig, out: Path) -> Path:
    data = load_and_split(config, lambda _: None)
    inter = data.dataset.interactions
    seqs = data.seqs
    if seqs.items.size >= 1 << 24:
        raise ValueError("too many events for exact float32 positions")
    target = out / DATASET
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{DATASET}.inter"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for position, (user, item) in enumerate(
            zip(seqs.users.tolist(), seqs.items.tolist(), strict=True)
        ):
            fh.write(f"{inter.user_ids[user]}\t{inter.item_ids[item]}\t{position}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/anchors"))
    args = parser.parse_args()
    print(export(TrainConfig(), args.out))


if __name__ == "__main__":
    main()
