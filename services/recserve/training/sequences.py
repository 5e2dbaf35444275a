"""Per-user chronological sequences, the leave-last-out split, and sessions for word2vec."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recserve.training.data import Interactions

# gensim silently truncates longer sentences; longer sessions are cut into pieces.
MAX_SENTENCE = 10_000


@dataclass
class UserSequences:
    """Events sorted by (user, time, original order); user u's events are
    ``[offsets[u], offsets[u + 1])``."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    offsets: np.ndarray
    order: np.ndarray  # position in the Interactions of each sorted event

    @property
    def num_users(self) -> int:
        return int(self.offsets.shape[0] - 1)


def sort_by_user_time(interactions: Interactions) -> UserSequences:
    n = len(interactions)
    # Ties in time keep file order: MovieLens has many ratings within the same second.
    order = np.lexsort((np.arange(n), interactions.timestamps, interactions.users))
    users = interactions.users[order]
    counts = np.bincount(users, minlength=len(interactions.user_ids))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return UserSequences(
        users=users,
        items=interactions.items[order],
        timestamps=interactions.timestamps[order],
        offsets=offsets,
        order=order,
    )


@dataclass
class Split:
    """Chronological leave-last-out over sorted events.

    For users with >= 3 events the last is test, the second-to-last validation, the rest
    train; users with fewer events are all train (nothing to hold out).
    """

    train: np.ndarray  # bool mask over sorted events
    val: np.ndarray  # int64 positions of validation events (one per eligible user)
    test: np.ndarray  # int64 positions of test events (same users, same order)


def leave_last_out(seqs: UserSequences, min_events: int = 3) -> Split:
    counts = np.diff(seqs.offsets)
    eligible = np.flatnonzero(counts >= min_events)
    test = seqs.offsets[eligible + 1] - 1
    val = test - 1
    train = np.ones(seqs.items.shape[0], dtype=bool)
    train[test] = False
    train[val] = False
    return Split(train=train, val=val, test=test)


def history_before(
    seqs: UserSequences, position: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """Item codes of the user's events before `position` (oldest first), optionally only those
    in `mask` (e.g. the training events)."""
    user = seqs.users[position]
    lo = int(seqs.offsets[user])
    items = seqs.items[lo:position]
    if mask is not None:
        items = items[mask[lo:position]]
    return items


def sessions(seqs: UserSequences, mask: np.ndarray, gap_seconds: float) -> Iterator[np.ndarray]:
    """Item-code arrays of the masked events, split at user changes and inactivity gaps
    longer than `gap_seconds` (<= 0: one session per user)."""
    kept = np.flatnonzero(mask)
    if kept.size == 0:
        return
    users = seqs.users[kept]
    times = seqs.timestamps[kept]
    items = seqs.items[kept]
    cut = np.zeros(kept.size, dtype=bool)
    cut[0] = True
    cut[1:] = users[1:] != users[:-1]
    if gap_seconds > 0:
        cut[1:] |= (times[1:] - times[:-1]) > gap_seconds
    bounds = [*np.flatnonzero(cut).tolist(), kept.size]
    for lo, hi in itertools.pairwise(bounds):
        for start in range(lo, hi, MAX_SENTENCE):
            yield items[start : min(hi, start + MAX_SENTENCE)]


def write_corpus(path: Path, seqs: UserSequences, mask: np.ndarray, gap_seconds: float) -> int:
    """One session per line, item codes as tokens (gensim corpus_file format). Returns the
    number of tokens written."""
    tokens = 0
    with path.open("w", encoding="ascii") as fh:
        for session in sessions(seqs, mask, gap_seconds):
            fh.write(" ".join(map(str, session.tolist())))
            fh.write("\n")
            tokens += session.size
    return tokens
