"""Hyperparameter sweeps on the validation split only (the test events are never looked at).

word2vec: coordinate descent — one parameter at a time over its grid, keeping the best value
before moving to the next. Each fit is scored by validation HR@10 / NDCG@10 with exact full
ranking, for both scoring vector choices; query settings (history length, decay) are swept on
every fit since they need no refit. Ranker: 5-fold cross-validation over users of the
validation candidate lists (L2 strength, positive class weight, cross/token values), judged by
how the re-ranked lists place the true next item.

    python -m recserve.training tune [--data ... --format ...] --out tuning.json

The ranker sweep alone (current word2vec settings) and the feature ablation (each group removed
in turn, the ranker refit on validation and scored on test, docs/training.md):

    python -m recserve.training.tuning ranker|ablation [--out result.json]
"""

from __future__ import annotations

import functools
import itertools
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recserve.model.features import FeatureSpec, ItemState
from recserve.model.query import QueryConfig
from recserve.model.recommend import rank, retrieve
from recserve.training.ann_tuning import tune_index
from recserve.training.config import Progress, TrainConfig, Word2VecParams
from recserve.training.embeddings import ItemEmbeddings, train_item2vec
from recserve.training.evaluation import EvalCases, hit_rate, ndcg
from recserve.training.pipeline import (
    ModelSpace,
    eval_cases,
    evaluate_test,
    evaluation_model,
    exact_ranks,
    examples_for,
    fit_ranking_model,
    list_ranks,
    load_training_data,
    query_matrix,
    user_feature_rows,
)
from recserve.training.ranker_training import (
    RankerExamples,
    fit_feature_spec,
    fit_ranker,
    item_state_of,
    standardised_encoder,
)
from recserve.training.sequences import leave_last_out, sort_by_user_time, write_corpus

WORD2VEC_GRID: dict[str, Sequence[Any]] = {
    "epochs": (10, 20, 40),
    "ns_exponent": (-0.5, 0.0, 0.5, 0.75, 1.0),
    "window": (3, 5, 10, 20),
    "negative": (5, 10, 20),
    "vector_size": (32, 64, 128),
    "sample": (0.0, 1e-4, 1e-3),
    "min_count": (1, 3),
    "shrink_windows": (True, False),
    "session_gap_seconds": (0.0, 3600.0, 86400.0),
}
HISTORY_LENGTHS = (1, 3, 5, 10, 20, 50)
DECAYS = (0.5, 0.7, 0.8, 0.9, 1.0)
# cross_value/token_value were swept before the history features existed (0.03/0.1 won);
# each setting is 5 ranker fits, so the grid stays small.
RANKER_GRID = {
    "c": (0.03, 0.1, 0.3, 1.0),
    "positive_weight": (1.0, 5.0),
    "cross_value": (0.03,),
    "token_value": (0.1,),
}
# Feature groups the ablation removes one at a time (`without`).
ABLATION_GROUPS: dict[str, tuple[str, ...]] = {
    "ann (score, gap, rank)": ("ann_score", "ann_gap", "ann_rank_log"),
    "popularity (all-time, decayed)": ("item_log_pop", "item_log_recent_pop"),
    "item age at request time (age, days until first event)": (
        "item_log_age",
        "item_log_until_first",
    ),
    # Non-zero only offline (see recserve.model.features): how much of the gain it is.
    "days until first event alone": ("item_log_until_first",),
    "co-occurrence (item-kNN session, last item)": ("knn_session", "knn_last"),
    "attribute affinity": ("attr_affinity",),
    "crosses (user/context x item tokens)": ("crosses",),
    "history length token": ("history_length",),
}
CV_FOLDS = 5


def _fit(seqs: Any, train_mask: np.ndarray, params: Word2VecParams, gap: float) -> ItemEmbeddings:
    with tempfile.TemporaryDirectory(prefix="recserve-tune-") as tmp:
        corpus = Path(tmp) / "train.txt"
        write_corpus(corpus, seqs, train_mask, gap)
        return train_item2vec(corpus, params)


def _score(
    emb: ItemEmbeddings, space: ModelSpace, cases: EvalCases, query: QueryConfig, which: str
) -> dict[str, float]:
    queries, _ = query_matrix(emb, space, cases, query)
    ranks = exact_ranks(queries, emb.scoring(which), cases, space)
    return {"hr@10": hit_rate(ranks, 10), "ndcg@10": ndcg(ranks, 10)}


def _key(metrics: dict[str, float]) -> tuple[float, float]:
    return (round(metrics["hr@10"], 4), round(metrics["ndcg@10"], 4))


def tune(
    config: TrainConfig,
    *,
    params: Sequence[str] | None = None,
    ranker: bool = True,
    say: Callable[[str], None],
) -> dict[str, Any]:
    dataset = load_training_data(config, say)
    inter = dataset.interactions
    seqs = sort_by_user_time(inter)
    split = leave_last_out(seqs)
    cases = eval_cases(seqs, split.val)
    say(f"tuning on the validation events of {split.val.size:,} users (test events untouched)")

    current: dict[str, Any] = {
        **config.w2v.to_dict(),
        "session_gap_seconds": config.session_gap_seconds,
    }
    query = config.query
    best: tuple[tuple[float, float], dict[str, Any], QueryConfig, str] | None = None
    trials: list[dict[str, Any]] = []
    cache: dict[str, tuple[dict[str, float], QueryConfig, str]] = {}

    def evaluate(setting: dict[str, Any]) -> tuple[dict[str, float], QueryConfig, str]:
        key = json.dumps(setting, sort_keys=True)
        if key in cache:
            return cache[key]
        w2v = Word2VecParams(**{k: v for k, v in setting.items() if k != "session_gap_seconds"})
        emb = _fit(seqs, split.train, w2v, float(setting["session_gap_seconds"]))
        space = ModelSpace.of(emb, len(inter.item_ids))
        results = []
        for which in ("output", "input"):
            for length, decay in itertools.product(HISTORY_LENGTHS, DECAYS):
                q = QueryConfig(history_length=length, decay=decay)
                results.append((_key(m := _score(emb, space, cases, q, which)), m, q, which))
        top = max(results, key=lambda r: r[0])
        at_base = next(r for r in results if r[2] == query and r[3] == "output")
        trials.append(
            {
                "setting": setting,
                "best": {**top[1], "query": top[2].to_dict(), "scoring": top[3]},
                "at_current_query_output": at_base[1],
            }
        )
        say(
            f"{_describe(setting, current)}: HR@10 {top[1]['hr@10']:.4f} NDCG@10 {top[1]['ndcg@10']:.4f} "
            f"({top[3]}, history {top[2].history_length}, decay {top[2].decay})"
        )
        cache[key] = (top[1], top[2], top[3])
        return cache[key]

    for name in params or list(WORD2VEC_GRID):
        for value in WORD2VEC_GRID[name]:
            setting = {**current, name: value}
            metrics, q, which = evaluate(setting)
            if best is None or _key(metrics) > best[0]:
                best = (_key(metrics), setting, q, which)
        assert best is not None
        current = dict(best[1])
        say(f"-> {name} = {current[name]}")
    assert best is not None
    _, setting, query, scoring = best
    ranker_trials: list[dict[str, Any]] = []
    if ranker:
        say("ranker cross-validation on validation candidate lists")
        ranker_trials = tune_ranker(config, dataset, seqs, split, setting, query, say=say)
    return {
        "word2vec": {k: v for k, v in setting.items() if k != "session_gap_seconds"},
        "session_gap_seconds": setting["session_gap_seconds"],
        "query": query.to_dict(),
        "scoring": scoring,
        "validation": best[0],
        "trials": trials,
        "ranker": ranker_trials,
    }


def _describe(setting: dict[str, Any], base: dict[str, Any]) -> str:
    changed = {k: v for k, v in setting.items() if base.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "current"


def tune_ranker(
    config: TrainConfig,
    dataset: Any,
    seqs: Any,
    split: Any,
    setting: dict[str, Any],
    query: QueryConfig,
    *,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    inter = dataset.interactions
    w2v = Word2VecParams(**{k: v for k, v in setting.items() if k != "session_gap_seconds"})
    emb = _fit(seqs, split.train, w2v, float(setting["session_gap_seconds"]))
    space = ModelSpace.of(emb, len(inter.item_ids))
    cases = eval_cases(seqs, split.val)
    queries, warm = query_matrix(emb, space, cases, query)
    index, _ = tune_index(emb.output, queries[warm][:1000], config.num_candidates)
    lists = retrieve(
        index, emb.input, query, [space.history(h) for h in cases.histories], config.num_candidates
    )
    counts = np.bincount(seqs.items[split.train], minlength=len(inter.item_ids))[space.codes]
    rows = [dataset.item_features.get(inter.item_ids[c], {}) for c in space.codes.tolist()]
    spec, _ = fit_feature_spec(
        (dataset.user_features.get(u, {}) for u in inter.user_ids),
        rows,
        counts,
        hash_bits=config.hash_bits,
    )
    examples = examples_for(
        lists,
        cases,
        space,
        user_feature_rows(dataset, cases, split.val, seqs),
        seqs.timestamps[split.val],
    )
    state = item_state_of(seqs, split.train, space.index_of)
    base = list_ranks(lists, cases, space)
    trials: list[dict[str, Any]] = [
        {"setting": "ANN order", "hr@10": hit_rate(base, 10), "ndcg@10": ndcg(base, 10)}
    ]
    say(f"ANN order: HR@10 {trials[0]['hr@10']:.4f} NDCG@10 {trials[0]['ndcg@10']:.4f}")
    folds = np.random.default_rng(config.seed).integers(0, CV_FOLDS, len(examples))
    for c, positive_weight, cross_value, token_value in itertools.product(*RANKER_GRID.values()):
        ranks = _cross_validate(
            replace(spec, cross_value=cross_value, token_value=token_value),
            rows,
            counts,
            state,
            examples,
            folds,
            c,
            positive_weight,
        )
        trial = {
            "setting": {
                "c": c,
                "positive_weight": positive_weight,
                "cross_value": cross_value,
                "token_value": token_value,
            },
            "hr@10": hit_rate(ranks, 10),
            "ndcg@10": ndcg(ranks, 10),
        }
        trials.append(trial)
        say(f"ranker {trial['setting']}: HR@10 {trial['hr@10']:.4f} NDCG@10 {trial['ndcg@10']:.4f}")
    return trials


def _cross_validate(
    spec: Any,
    rows: Any,
    counts: np.ndarray,
    state: ItemState,
    examples: RankerExamples,
    folds: np.ndarray,
    c: float,
    positive_weight: float,
) -> np.ndarray:
    ranks = np.full(len(examples), -1, dtype=np.int64)
    for fold in range(CV_FOLDS):
        train, test = examples.subset(folds != fold), np.flatnonzero(folds == fold)
        encoder = standardised_encoder(spec, rows, counts, train, state)
        ranker = fit_ranker(encoder, train, c=c, positive_weight=positive_weight)
        held = examples.subset(folds == fold)
        scores = ranker.score_batch(
            held.features, held.candidates, held.ann_scores, held.histories, held.times
        )
        for j, (cands, s, labels) in enumerate(
            zip(held.candidates, scores, held.labels, strict=True)
        ):
            if labels.any():
                ranks[test[j]] = int(np.flatnonzero(labels[rank(s, cands, cands.size)])[0])
    return ranks


def without(spec: FeatureSpec, group: Sequence[str]) -> FeatureSpec:
    """The spec with one `ABLATION_GROUPS` group removed."""
    if "crosses" in group:
        return replace(spec, user=())
    if "history_length" in group:
        return replace(spec, history_edges=())
    numeric = tuple(n for n in spec.numeric if n not in group)
    return replace(
        spec,
        numeric=numeric,
        numeric_mean=(0.0,) * len(numeric),
        numeric_scale=(1.0,) * len(numeric),
    )


def ablation(config: TrainConfig, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """The `train` pipeline's evaluation model, its ranker refit on the validation lists with
    each feature group removed in turn, every fit scored on the same test lists (reported
    only: no choice is made on test). Rows: HR@10, NDCG@10, AUC and their change against the
    ranker with every feature."""
    model = evaluation_model(config, say)
    data, space, holdout = model.data, model.space, model.holdout
    val_lists, test_lists = model.lists(config, holdout.val), model.lists(config, holdout.test)
    rows: list[dict[str, Any]] = []
    for name, group in [("none (all features)", ()), *ABLATION_GROUPS.items()]:
        fitted = fit_ranking_model(
            config,
            data,
            space,
            holdout,
            val_lists,
            say,
            adjust=functools.partial(without, group=group) if group else None,
        )
        metrics, _ = evaluate_test(config, data, holdout, test_lists, space, fitted.ranker)
        if not rows:
            rows.append({"removed": "ANN order (no ranker)", **metrics["candidates"]})
        rows.append({"removed": name, **metrics["pipeline"]})
        say(f"without {name}: HR@10 {rows[-1]['hr@10']:.4f} NDCG@10 {rows[-1]['ndcg@10']:.4f}")
    full = rows[1]
    for row in rows:
        for key in ("hr@10", "ndcg@10", "auc"):
            row[f"delta_{key}"] = row[key] - full[key]
    return rows


def ablation_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| removed | HR@10 | NDCG@10 | AUC | ΔHR@10 | ΔNDCG@10 | ΔAUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['removed']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['auc']:.4f} | "
            f"{r['delta_hr@10']:+.4f} | {r['delta_ndcg@10']:+.4f} | {r['delta_auc']:+.4f} |"
        )
    return "\n".join(lines) + "\n"


def run(
    config: TrainConfig, out: Path | None, params: Sequence[str] | None, *, ranker: bool = True
) -> dict[str, Any]:
    progress = Progress()
    result = tune(config, params=params, ranker=ranker, say=progress)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        progress(f"tuning results: {out}")
    return result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="ranker sweep or feature ablation (MovieLens-100K)"
    )
    parser.add_argument("mode", choices=["ranker", "ablation"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    config, progress = TrainConfig(), Progress()
    result: Any
    if args.mode == "ablation":
        result = ablation(config, progress)
        print(ablation_table(result))
    else:
        dataset = load_training_data(config, progress)
        seqs = sort_by_user_time(dataset.interactions)
        setting = {**config.w2v.to_dict(), "session_gap_seconds": config.session_gap_seconds}
        result = tune_ranker(
            config, dataset, seqs, leave_last_out(seqs), setting, config.query, say=progress
        )
        best = max(result[1:], key=lambda t: (round(t["hr@10"], 4), round(t["ndcg@10"], 4)))
        print(json.dumps(best))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
