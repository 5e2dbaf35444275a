"""The RecBole anchors' export keeps the training pipeline's exact order and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recserve.training.config import TrainConfig
from recserve.training.pipeline import load_and_split
from tools.anchors.export_split import export


def test_export_is_the_pipelines_order_with_distinct_float32_times(
    tmp_path: Path, synthetic_dir: Path
) -> None:
    config = TrainConfig(data=str(synthetic_dir))
    path = export(config, tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    rows = [line.split("\t") for line in lines[1:]]
    times = np.asarray([float(r[2]) for r in rows])
    # Distinct even after RecBole's float32 cast, so its "TO" order cannot merge ties.
    assert np.unique(times.astype(np.float32)).size == len(rows)

    data = load_and_split(config, lambda _: None)
    inter = data.dataset.interactions
    assert [r[0] for r in rows] == [inter.user_ids[u] for u in data.seqs.users.tolist()]
    assert [r[1] for r in rows] == [inter.item_ids[i] for i in data.seqs.items.tolist()]
    # Each user's latest exported event is the pipeline's test event, the one before validation.
    last: dict[str, int] = {}
    for position, (user, _, _) in enumerate(rows):
        last[user] = position
    test_positions = sorted(last[inter.user_ids[u]] for u in data.seqs.users[data.split.test])
    assert test_positions == sorted(data.split.test.tolist())
