"""Offline evaluation: chronological leave-last-out, full ranking over all items with the
user's already-seen items excluded, one held-out target per user.

A method is judged by the 0-based rank of the target in its ranking (-1 = not ranked, e.g.
outside the candidate list). All methods work in dataset item codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

# ------------------------------------------------------------------------------- metrics


def hit_rate(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return float("nan")
    return float(np.mean((ranks >= 0) & (ranks < k)))


def ndcg(ranks: np.ndarray, k: int) -> float:
    """One relevant item per user, so IDCG = 1 and DCG = 1 / log2(rank + 2) inside the top k."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return float("nan")
    hit = (ranks >= 0) & (ranks < k)
    gains = np.zeros(ranks.shape, dtype=np.float64)
    gains[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return float(gains.mean())


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with average ranks for ties); nan without both classes."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def grouped_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Mean per-group AUC over groups that have both classes (ranking quality within a list)."""
    labels = np.asarray(labels, dtype=bool)
    groups = np.asarray(groups)
    values = []
    for g in np.unique(groups):
        mask = groups == g
        value = auc(labels[mask], scores[mask])
        if not np.isnan(value):
            values.append(value)
    return float(np.mean(values)) if values else float("nan")


def rank_in_list(ranked: np.ndarray, target: int) -> int:
    where = np.flatnonzero(np.asarray(ranked) == target)
    return int(where[0]) if where.size else -1


# ------------------------------------------------------------------------------ cases


@dataclass
class EvalCases:
    """One held-out event per user: its target and everything the user did before it."""

    users: np.ndarray  # user codes
    targets: np.ndarray  # item codes
    histories: list[np.ndarray]  # item codes, oldest first (these are the "seen" items)


# ---------------------------------------------------------------------------- baselines


def popularity_ranks(cases: EvalCases, counts: np.ndarray) -> np.ndarray:
    """Global popularity order (ties by item code), seen items removed."""
    order = np.argsort(-counts, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    ranks = np.empty(len(cases.targets), dtype=np.int64)
    for i, (target, seen) in enumerate(zip(cases.targets.tolist(), cases.histories, strict=True)):
        seen_positions = position[np.unique(seen)]
        if np.isin(target, seen):
            ranks[i] = -1
            continue
        ranks[i] = position[target] - int((seen_positions < position[target]).sum())
    return ranks


class ItemKnn:
    """Item-based kNN: cosine similarity of item co-occurrence (binary user x item matrix),
    scored against the user's last item; ties broken by popularity then item code."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int):
        matrix = sparse.csr_matrix(
            (np.ones(users.size, dtype=np.float32), (users, items)), shape=(num_users, num_items)
        )
        matrix.data[:] = 1.0  # duplicates summed by the constructor: back to binary
        self.matrix = matrix.tocsc()
        self.item_user = self.matrix.T.tocsr()
        counts = np.asarray(self.matrix.sum(axis=0)).ravel()
        self.norms = np.sqrt(np.maximum(counts, 1.0))
        order = np.argsort(-counts, kind="stable")
        self.pop_key = np.empty(num_items, dtype=np.float64)
        self.pop_key[order] = -np.arange(num_items, dtype=np.float64)  # larger = more popular

    def ranks(self, cases: EvalCases, batch: int = 128) -> np.ndarray:
        out = np.full(len(cases.targets), -1, dtype=np.int64)
        rows = [i for i, h in enumerate(cases.histories) if h.size]
        for lo in range(0, len(rows), batch):
            chunk = rows[lo : lo + batch]
            lasts = np.asarray([cases.histories[i][-1] for i in chunk])
            co = (self.item_user[lasts] @ self.matrix).toarray()
            scores = co / (self.norms[lasts][:, None] * self.norms[None, :])
            for r, i in enumerate(chunk):
                target = int(cases.targets[i])
                row = scores[r]
                row[cases.histories[i]] = -np.inf
                if np.isin(target, cases.histories[i]):
                    continue
                s_t, p_t = row[target], self.pop_key[target]
                out[i] = int(((row > s_t) | ((row == s_t) & (self.pop_key > p_t))).sum())
        return out


# --------------------------------------------------------------------------- reporting


def metrics_row(ranks: np.ndarray, *, k: int = 10) -> dict[str, float]:
    return {f"hr@{k}": hit_rate(ranks, k), f"ndcg@{k}": ndcg(ranks, k)}


def markdown_table(metrics: dict[str, dict[str, float]], *, title: str = "") -> str:
    columns = ["hr@10", "ndcg@10", "recall@100", "auc", "gauc"]
    lines = [f"### {title}", ""] if title else []
    lines.append("| method | " + " | ".join(columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for method, row in metrics.items():
        cells = [f"{row[c]:.4f}" if c in row and not np.isnan(row[c]) else "" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
