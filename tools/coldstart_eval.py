"""How well cold-start vectors retrieve items the model never saw (MovieLens-100K by default).

A seeded sample of items (``--holdout`` of those with >= 5 events) loses all its events; word2vec
is fitted on the remaining training events ("cold" model) and on all training events
("trained" model, the reference). Every validation and test event whose target is a held-out
item is a case: the user's history before it gives the query, all items are scored exactly
(seen items excluded), and HR@10 / HR@50 of the target are reported with

  * trained:  the held-out items' own trained vectors (upper bound),
  * each cold-start rule (`recserve.catalog.vectors.RULES`) x attribute-mean weighting
    (plain mean of the items with the value, or weighted by the items' event counts),
  * random: k / number of items.

    python -m tools.coldstart_eval [--data-dir data] [--holdout 0.1] [--seed 0] [--out report.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recserve.catalog.vectors import RULES, prior_vectors
from recserve.model.attribute_means import AttributeMeans
from recserve.model.query import query_vector
from recserve.training.config import Progress, TrainConfig
from recserve.training.embeddings import ItemEmbeddings
from recserve.training.pipeline import ModelSpace, TrainData, fit_word2vec, load_and_split
from recserve.training.sequences import history_before

MIN_EVENTS = 5
KS = (10, 50)


def hit_rates(
    emb: ItemEmbeddings,
    scoring: str,
    cold: dict[int, np.ndarray],
    data: TrainData,
    cases: np.ndarray,
    config: TrainConfig,
) -> dict[str, float]:
    """HR@k of the cases' targets over all items: the model's items plus `cold` (code ->
    scoring vector) for held-out items it does not have."""
    space = ModelSpace.of(emb, data.num_items)
    codes = np.concatenate([space.codes, np.asarray(sorted(cold), dtype=np.int64)])
    matrix = np.concatenate(
        [
            emb.scoring(scoring),
            np.asarray([cold[c] for c in sorted(cold)]).reshape(-1, emb.input.shape[1]),
        ]
    )
    row_of = {int(c): r for r, c in enumerate(codes.tolist())}
    hits = {k: 0 for k in KS}
    counted = 0
    for position in cases.tolist():
        target = row_of.get(int(data.seqs.items[position]))
        history = space.history(history_before(data.seqs, position))
        if target is None or history.size == 0:
            continue
        counted += 1
        scores = matrix @ query_vector(emb.input[history], config.query)
        seen = [
            row_of[int(c)] for c in history_before(data.seqs, position).tolist() if int(c) in row_of
        ]
        scores[seen] = -np.inf
        rank = int((scores > scores[target]).sum())
        for k in KS:
            hits[k] += rank < k
    return {f"hr@{k}": hits[k] / max(counted, 1) for k in KS} | {"cases": counted}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.coldstart_eval", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--holdout", type=float, default=0.1, help="fraction of items held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)

    config = TrainConfig(data_dir=args.data_dir, seed=args.seed)
    say = Progress()
    data = load_and_split(config, say)
    features = data.dataset.item_features
    item_ids = data.dataset.interactions.item_ids
    counts = np.bincount(data.seqs.items, minlength=data.num_items)
    rng = np.random.default_rng(args.seed)
    eligible = np.flatnonzero(counts >= MIN_EVENTS)
    held = np.sort(rng.choice(eligible, size=int(args.holdout * eligible.size), replace=False))
    is_held = np.zeros(data.num_items, dtype=bool)
    is_held[held] = True
    cases = np.concatenate([data.split.val, data.split.test])
    cases = cases[is_held[data.seqs.items[cases]]]

    trained = fit_word2vec(
        config, data.seqs, data.split.train, "word2vec (trained) on {:,} events", say
    )
    cold_mask = data.split.train & ~is_held[data.seqs.items]
    cold = fit_word2vec(config, data.seqs, cold_mask, "word2vec (cold) on {:,} events", say)
    cold_attrs = [features.get(item_ids[c], {}) for c in cold.codes.tolist()]
    report: dict[str, object] = {
        "dataset": data.dataset.name,
        "held_out_items": int(held.size),
        "items": data.num_items,
        "random": {f"hr@{k}": k / data.num_items for k in KS},
    }
    for scoring in ("output", "input"):
        rows: dict[str, object] = {"trained": hit_rates(trained, scoring, {}, data, cases, config)}
        for weighting, rescale in itertools.product(("mean", "popularity"), (False, True)):
            weights = None if weighting == "mean" else cold.counts
            means = AttributeMeans.fit(
                cold_attrs, cold.input, cold.scoring(scoring), weights, rescale=rescale
            )
            for rule in RULES:
                vectors = {}
                for code in held.tolist():
                    attrs = features.get(item_ids[code], {})
                    prior = prior_vectors(means, attrs, rule, rescale=rescale)
                    if prior is not None:
                        vectors[code] = prior[1]
                name = f"{rule}/{weighting}" + ("/rescaled" if rescale else "")
                rows[name] = hit_rates(cold, scoring, vectors, data, cases, config)
        report[scoring] = rows
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
