"""Trains and evaluates RecBole anchors on the split `export_split` wrote (bench-only).

Runs in .venv-anchors (recbole 1.2.1 --no-deps, numpy 1.26, torch CPU), never the product
venv. Two of RecBole's defaults are corrected so its numbers follow recserve's protocol:

* the exported timestamps are exact positions, so its float32 timestamps merge no events;
* every model's full-sort scores have the user's items before the target masked (RecBole masks
  only padding for sequential models), for early stopping on validation and for test alike.

    nice -n 19 .venv-anchors/bin/python tools/anchors/run_recbole.py --data build/anchors \
        --model GRU4Rec --epochs 60 --out build/anchors/GRU4Rec.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault(
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1"
)  # torch >= 2.6 vs RecBole checkpoints

import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

DATASET = "ml100k_exact"
SEQUENTIAL = {"GRU4Rec", "SASRec"}


class SeenMaskingTrainer(Trainer):
    """Full-sort evaluation with every item the user took before the target masked."""

    before: dict[tuple[int, int], np.ndarray]
    epochs_run = 0

    def _train_epoch(self, *args: Any, **kwargs: Any) -> Any:
        self.epochs_run += 1
        return super()._train_epoch(*args, **kwargs)

    def _full_sort_batch_eval(self, batched_data: Any) -> Any:
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        uid_field = self.config["USER_ID_FIELD"]
        users = interaction[uid_field].tolist()
        for row, target in zip(positive_u.tolist(), positive_i.tolist(), strict=True):
            seen = self.before[(users[row], target)]
            if seen.size:
                scores[row, torch.from_numpy(seen)] = -np.inf
        return interaction, scores, positive_u, positive_i


def items_before(dataset: Any) -> dict[tuple[int, int], np.ndarray]:
    """(user, item) -> the user's items before that event, in RecBole's internal ids."""
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    items = inter[dataset.iid_field].numpy()
    times = inter[dataset.time_field].numpy()
    order = np.lexsort((times, users))
    out: dict[tuple[int, int], np.ndarray] = {}
    start = 0
    for end in range(1, order.size + 1):
        if end == order.size or users[order[end]] != users[order[start]]:
            seq = items[order[start:end]]
            for k in range(seq.size):
                out[(int(users[order[start]]), int(seq[k]))] = seq[:k]
            start = end
    return out


def run(model_name: str, data: Path, epochs: int, stopping_step: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "data_path": str(data),
        "dataset": DATASET,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "mode": "full",
            "group_by": "user",
        },
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": epochs,
        "stopping_step": stopping_step,
        "eval_batch_size": 4096,
        "device": "cpu",
        "use_gpu": False,
        "show_progress": False,
        "checkpoint_dir": str(data / "saved"),
        "seed": 2020,
        "reproducibility": True,
        "MAX_ITEM_LIST_LENGTH": 50,
    }
    if model_name in SEQUENTIAL:
        params.update({"loss_type": "CE", "train_neg_sample_args": None})
    config = Config(model=model_name, dataset=DATASET, config_dict=params)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = SeenMaskingTrainer(config, model)
    trainer.before = items_before(dataset)
    started = time.perf_counter()
    _, best_valid_result = trainer.fit(train_data, valid_data, saved=True)
    fit_seconds = time.perf_counter() - started
    test = trainer.evaluate(test_data, load_best_model=True)
    return {
        "model": model_name,
        "epochs_cap": epochs,
        "stopping_step": stopping_step,
        "epochs_run": trainer.epochs_run,
        "best_valid": {k: float(v) for k, v in best_valid_result.items()},
        "test": {k: float(v) for k, v in test.items()},
        "fit_seconds": round(fit_seconds, 1),
        "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("build/anchors"))
    parser.add_argument("--model", required=True, choices=["BPR", "GRU4Rec", "SASRec"])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--stopping-step", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run(args.model, args.data, args.epochs, args.stopping_step)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
