from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recserve.training import sequences
from recserve.training.data import Interactions
from recserve.training.sequences import (
    history_before,
    leave_last_out,
    sessions,
    sort_by_user_time,
    write_corpus,
)


def _interactions() -> Interactions:
    # user 0: items 3 (t=50), 1 (t=10), 2 (t=10, later in the file), 4 (t=5000)
    # user 1: items 5, 6; user 2: items 7, 8, 9
    return Interactions(
        user_ids=["a", "b", "c"],
        item_ids=[str(i) for i in range(10)],
        users=np.array([0, 1, 0, 0, 2, 2, 1, 0, 2], dtype=np.int32),
        items=np.array([3, 5, 1, 2, 7, 8, 6, 4, 9], dtype=np.int32),
        timestamps=np.array([50, 1, 10, 10, 1, 2, 2, 5000, 3], dtype=np.int64),
        weights=np.ones(9, dtype=np.float32),
    )


def test_sort_keeps_file_order_for_equal_times() -> None:
    seqs = sort_by_user_time(_interactions())
    assert seqs.items.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert seqs.offsets.tolist() == [0, 4, 6, 9]


def test_leave_last_out() -> None:
    seqs = sort_by_user_time(_interactions())
    split = leave_last_out(seqs)
    assert seqs.items[split.test].tolist() == [4, 9]  # user b has only 2 events: all train
    assert seqs.items[split.val].tolist() == [3, 8]
    assert seqs.items[split.train].tolist() == [1, 2, 5, 6, 7]
    assert history_before(seqs, int(split.test[0])).tolist() == [1, 2, 3]
    assert history_before(seqs, int(split.test[0]), split.train).tolist() == [1, 2]


def test_sessions_split_on_user_and_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    seqs = sort_by_user_time(_interactions())
    everything = np.ones(9, dtype=bool)
    assert [s.tolist() for s in sessions(seqs, everything, 0)] == [[1, 2, 3, 4], [5, 6], [7, 8, 9]]
    assert [s.tolist() for s in sessions(seqs, everything, 100)] == [
        [1, 2, 3],
        [4],
        [5, 6],
        [7, 8, 9],
    ]
    monkeypatch.setattr(sequences, "MAX_SENTENCE", 2)
    assert [s.tolist() for s in sessions(seqs, everything, 0)] == [
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
        [9],
    ]


def test_write_corpus(tmp_path: Path) -> None:
    seqs = sort_by_user_time(_interactions())
    mask = leave_last_out(seqs).train
    assert write_corpus(tmp_path / "c.txt", seqs, mask, 0) == 5
    assert (tmp_path / "c.txt").read_text() == "1 2\n5 6\n7\n"
