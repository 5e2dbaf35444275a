"""data -> embeddings -> index -> ranker -> evaluation -> bundle.

Two word2vec fits:
  * the evaluation model sees only the training events (each user's last two events held out).
    Validation (second-to-last) picks the scoring vectors and trains the ranker on real
    candidate lists; test (last) is reported, for every method, in the same run;
  * the served model is refit on every event with the same hyperparameters, gets its own
    tuned ScaNN index, and reuses the ranker (its features do not depend on the refit).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recserve.model.bundle import EVAL_JSON, EVAL_MD, BundleContents, write_bundle
from recserve.model.features import FeatureEncoder
from recserve.model.query import QueryConfig, query_vector
from recserve.model.ranker import Ranker
from recserve.model.recommend import CandidateList, rank, retrieve
from recserve.training.ann_tuning import tune_index
from recserve.training.config import Progress, TrainConfig
from recserve.training.datasets import DataError, Dataset, load_dataset
from recserve.training.embeddings import ItemEmbeddings, train_item2vec
from recserve.training.evaluation import (
    EvalCases,
    ItemKnn,
    auc,
    grouped_auc,
    hit_rate,
    markdown_table,
    metrics_row,
    ndcg,
    popularity_ranks,
    rank_in_list,
)
from recserve.training.ranker_training import (
    RankerExamples,
    fit_feature_spec,
    fit_ranker,
    standardised_encoder,
)
from recserve.training.sequences import (
    UserSequences,
    history_before,
    leave_last_out,
    sort_by_user_time,
    write_corpus,
)
from recserve.training.synthetic import SyntheticSpec, generate

MAX_SEED_EVENTS = 200
ANN_TUNING_QUERIES = 1000


@dataclass
class TrainResult:
    bundle: Path
    metrics: dict[str, dict[str, float]]
    report_markdown: str
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------ helpers


@dataclass
class ModelSpace:
    """Dataset item codes <-> model item indices (word2vec vocabulary order)."""

    codes: np.ndarray
    index_of: np.ndarray  # [num dataset items] -> model index or -1

    @classmethod
    def of(cls, emb: ItemEmbeddings, num_items: int) -> ModelSpace:
        index_of = np.full(num_items, -1, dtype=np.int64)
        index_of[emb.codes] = np.arange(emb.codes.size)
        return cls(emb.codes.astype(np.int64), index_of)

    def history(self, codes: np.ndarray) -> np.ndarray:
        mapped = self.index_of[codes]
        return mapped[mapped >= 0]


def eval_cases(seqs: UserSequences, positions: np.ndarray) -> EvalCases:
    return EvalCases(
        users=seqs.users[positions].astype(np.int64),
        targets=seqs.items[positions].astype(np.int64),
        histories=[history_before(seqs, int(p)) for p in positions],
    )


def user_feature_rows(
    dataset: Dataset, cases: EvalCases, positions: np.ndarray, seqs: UserSequences
) -> list[dict[str, str]]:
    """Raw user features merged with the held-out event's context, as the gateway does."""
    inter = dataset.interactions
    rows = []
    for user, position in zip(cases.users.tolist(), positions.tolist(), strict=True):
        row = dict(dataset.user_features.get(inter.user_ids[user], {}))
        event = int(seqs.order[position])
        for column, (codes, categories) in inter.context.items():
            code = int(codes[event])
            if code >= 0:
                row[column] = categories[code]
        rows.append(row)
    return rows


def exact_ranks(
    queries: np.ndarray, scoring: np.ndarray, cases: EvalCases, space: ModelSpace, batch: int = 256
) -> np.ndarray:
    """Rank of each target under exact dot-product scoring of all model items, seen items
    removed, ties by item index; -1 for targets unknown to the model or already seen and for
    users without a query (all-zero row)."""
    ranks = np.full(len(cases.targets), -1, dtype=np.int64)
    columns = np.arange(scoring.shape[0])
    for lo in range(0, len(cases.targets), batch):
        hi = min(lo + batch, len(cases.targets))
        scores = queries[lo:hi] @ scoring.T
        seen = [space.history(h) for h in cases.histories[lo:hi]]
        rows = np.repeat(np.arange(hi - lo), [s.size for s in seen])
        scores[rows, np.concatenate(seen) if seen else rows] = -np.inf
        target = space.index_of[cases.targets[lo:hi]]
        valid = (target >= 0) & queries[lo:hi].any(axis=1)
        s_t = scores[np.arange(hi - lo), np.maximum(target, 0)]
        valid &= np.isfinite(s_t)
        better = (scores > s_t[:, None]).sum(axis=1)
        tied = ((scores == s_t[:, None]) & (columns[None, :] < target[:, None])).sum(axis=1)
        ranks[lo:hi] = np.where(valid, better + tied, -1)
    return ranks


def query_matrix(
    emb: ItemEmbeddings, space: ModelSpace, cases: EvalCases, config: QueryConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Query vectors of the cases (zeros for cold users) and a has-history mask."""
    out = np.zeros((len(cases.targets), emb.input.shape[1]), dtype=np.float32)
    warm = np.zeros(len(cases.targets), dtype=bool)
    for i, history in enumerate(cases.histories):
        mapped = space.history(history)
        if mapped.size:
            out[i] = query_vector(emb.input[mapped], config)
            warm[i] = True
    return out, warm


def list_ranks(lists: Sequence[CandidateList], cases: EvalCases, space: ModelSpace) -> np.ndarray:
    targets = space.index_of[cases.targets]
    return np.asarray(
        [
            rank_in_list(c, t) if t >= 0 else -1
            for (c, _), t in zip(lists, targets.tolist(), strict=True)
        ]
    )


def examples_for(
    lists: Sequence[CandidateList],
    cases: EvalCases,
    space: ModelSpace,
    features: Sequence[Mapping[str, str]],
) -> RankerExamples:
    targets = space.index_of[cases.targets]
    return RankerExamples(
        features=list(features),
        candidates=[c for c, _ in lists],
        ann_scores=[a for _, a in lists],
        labels=[
            (c == t).astype(np.int8) for (c, _), t in zip(lists, targets.tolist(), strict=True)
        ],
    )


def _sample(positions: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if positions.size <= limit:
        return positions
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(positions, size=limit, replace=False))


# ------------------------------------------------------------------------------- train


def load_training_data(config: TrainConfig, say: Callable[[str], None]) -> Dataset:
    if config.fmt == "synthetic" and config.data is None:
        spec = config.synthetic or SyntheticSpec(
            items=10_000, users=2_000, events=200_000, seed=config.seed
        )
        with tempfile.TemporaryDirectory(prefix="recserve-synthetic-") as tmp:
            say(
                f"generating synthetic data: {spec.items:,} items, {spec.users:,} users, {spec.events:,} events"
            )
            generate(spec, Path(tmp))
            return load_dataset(tmp, "synthetic", config.load, say=say)
    return load_dataset(
        config.data,
        config.fmt,
        config.load,
        item_features=config.item_features,
        user_features=config.user_features,
        data_dir=config.data_dir,
        say=say,
    )


def train(config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    say = progress or Progress()
    dataset = load_training_data(config, say)
    inter = dataset.interactions
    for line in dataset.report.summary():
        say(line)
    say(
        f"{dataset.name}: {len(inter):,} events, {len(inter.user_ids):,} users, {len(inter.item_ids):,} items"
    )
    seqs = sort_by_user_time(inter)
    split = leave_last_out(seqs)
    if split.val.size == 0:
        raise DataError("no user has 3 or more events: nothing to hold out for validation and test")
    say.stage("load")

    with tempfile.TemporaryDirectory(prefix="recserve-train-") as tmp:
        corpus = Path(tmp) / "train.txt"
        tokens = write_corpus(corpus, seqs, split.train, config.session_gap_seconds)
        say(f"word2vec (evaluation model) on {tokens:,} training events")
        emb = train_item2vec(corpus, config.w2v, say=say)
    space = ModelSpace.of(emb, len(inter.item_ids))
    say.stage("word2vec_eval")

    # Evaluate the same users on validation and test.
    users_pos = _sample(np.arange(split.val.size), config.eval_users, config.seed)
    val_pos, test_pos = split.val[users_pos], split.test[users_pos]
    val_cases, test_cases = eval_cases(seqs, val_pos), eval_cases(seqs, test_pos)
    val_queries, val_warm = query_matrix(emb, space, val_cases, config.query)

    choices = ["output", "input"] if config.scoring == "auto" else [config.scoring]
    scoring_report: dict[str, dict[str, float]] = {}
    for which in choices:
        scoring_report[which] = metrics_row(
            exact_ranks(val_queries, emb.scoring(which), val_cases, space)
        )
    scoring = max(choices, key=lambda w: (scoring_report[w]["hr@10"], scoring_report[w]["ndcg@10"]))
    say(
        "validation, exact scoring: "
        + ", ".join(f"{w} HR@10 {m['hr@10']:.4f}" for w, m in scoring_report.items())
        + f" -> {scoring} vectors"
    )

    eval_index, eval_ann = tune_index(
        emb.scoring(scoring),
        val_queries[val_warm][:ANN_TUNING_QUERIES],
        config.num_candidates,
        target_recall=config.ann_target_recall,
        say=say,
    )
    say.stage("index_eval")

    def candidate_lists(cases: EvalCases) -> list[CandidateList]:
        histories = [space.history(h) for h in cases.histories]
        return retrieve(eval_index, emb.input, config.query, histories, config.num_candidates)

    val_lists, test_lists = candidate_lists(val_cases), candidate_lists(test_cases)
    train_counts = np.bincount(seqs.items[split.train], minlength=len(inter.item_ids))
    item_rows = [dataset.item_features.get(inter.item_ids[c], {}) for c in space.codes.tolist()]
    spec, feature_report = fit_feature_spec(
        (dataset.user_features.get(u, {}) for u in inter.user_ids),
        item_rows,
        train_counts[space.codes],
        hash_bits=config.hash_bits,
    )
    spec = replace(spec, cross_value=config.cross_value, token_value=config.token_value)
    val_examples = examples_for(
        val_lists, val_cases, space, user_feature_rows(dataset, val_cases, val_pos, seqs)
    )
    encoder = standardised_encoder(spec, item_rows, train_counts[space.codes], val_examples)
    positives = int(sum(int(y.sum()) for y in val_examples.labels))
    say(
        f"ranker: logistic regression on {len(val_examples):,} validation candidate lists ({positives:,} positives)"
    )
    ranker = fit_ranker(encoder, val_examples, c=config.ranker_c)
    say.stage("ranker")

    metrics, details = evaluate_test(
        dataset,
        seqs,
        split.train,
        test_cases,
        test_pos,
        test_lists,
        space,
        ranker,
        train_counts,
        config,
    )
    val_metrics = {
        "candidates": {
            **metrics_row(list_ranks(val_lists, val_cases, space)),
            "scoring": scoring_report,
        }
    }
    table = markdown_table(
        metrics,
        title=f"{dataset.name}: test (last event per user), {len(test_cases.targets):,} users",
    )
    say.stage("evaluate")

    # The served model: every event, same hyperparameters.
    with tempfile.TemporaryDirectory(prefix="recserve-train-") as tmp:
        corpus = Path(tmp) / "all.txt"
        tokens = write_corpus(
            corpus, seqs, np.ones(seqs.items.size, dtype=bool), config.session_gap_seconds
        )
        say(f"word2vec (served model) on all {tokens:,} events")
        final = train_item2vec(corpus, config.w2v, say=say)
    final_space = ModelSpace.of(final, len(inter.item_ids))
    say.stage("word2vec_final")
    all_cases = eval_cases(
        seqs,
        _sample(seqs.offsets[1:][np.diff(seqs.offsets) > 0] - 1, ANN_TUNING_QUERIES, config.seed),
    )
    final_queries, final_warm = query_matrix(final, final_space, all_cases, config.query)
    final_index, final_ann = tune_index(
        final.scoring(scoring),
        final_queries[final_warm],
        config.num_candidates,
        target_recall=config.ann_target_recall,
        say=say,
    )
    say.stage("index_final")

    item_ids = [inter.item_ids[c] for c in final_space.codes.tolist()]
    popularity = np.bincount(inter.items, minlength=len(inter.item_ids))[final_space.codes]
    final_items = [dataset.item_features.get(i, {}) for i in item_ids]
    served_ranker = Ranker(
        FeatureEncoder(encoder.spec, final_items, popularity), ranker.weights, ranker.intercept
    )
    evaluation = {
        "protocol": "chronological leave-last-out; full ranking over all items, seen items excluded; "
        "test = last event per user, validation = second-to-last",
        "users": len(test_cases.targets),
        "metrics": metrics,
        "validation": val_metrics,
        "details": details,
    }
    manifest = {
        "params": config.params(),
        "data": {
            "name": dataset.name,
            "fingerprint": inter.fingerprint(),
            "events": len(inter),
            "users": len(inter.user_ids),
            "items": len(inter.item_ids),
            "load_report": dataset.report.to_dict(),
        },
        "scoring_vectors": scoring,
        "metrics": json_safe(metrics),
        "validation": json_safe(val_metrics),
        "ann": {"served": _strip_trials(final_ann), "evaluation": _strip_trials(eval_ann)},
        "ranker": {
            **feature_report,
            "c": config.ranker_c,
            "training_lists": len(val_examples),
            "positives": positives,
        },
        "timings": say.timings,
    }
    contents = BundleContents(
        item_ids=item_ids,
        input_vectors=final.input,
        popularity=popularity,
        query=config.query,
        num_candidates=config.num_candidates,
        index=final_index,
        ranker=served_ranker,
        item_features=final_items,
        manifest=manifest,
        users=list(_user_seed(dataset, seqs, final_space, item_ids)),
        reports={
            EVAL_JSON: json.dumps(
                json_safe({**evaluation, "ann": {"served": final_ann, "evaluation": eval_ann}}),
                indent=2,
                allow_nan=False,
            )
            + "\n",
            EVAL_MD: _eval_markdown(table, evaluation, scoring, final_ann, feature_report),
        },
    )
    say.stage("bundle_prepare")
    path = write_bundle(config.bundles, contents)
    say.stage("bundle_write")
    say(f"bundle written: {path}")
    return TrainResult(bundle=path, metrics=metrics, report_markdown=table, timings=say.timings)


def evaluate_test(
    dataset: Dataset,
    seqs: UserSequences,
    train_mask: np.ndarray,
    cases: EvalCases,
    positions: np.ndarray,
    lists: Sequence[CandidateList],
    space: ModelSpace,
    ranker: Ranker,
    train_counts: np.ndarray,
    config: TrainConfig,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """All four methods on the test events of the same users, same protocol."""
    inter = dataset.interactions
    pop_ranks = popularity_ranks(cases, train_counts)
    knn = ItemKnn(
        seqs.users[train_mask], seqs.items[train_mask], len(inter.user_ids), len(inter.item_ids)
    )
    knn_ranks = knn.ranks(cases)

    # Cold users (no known history) get the popularity list, as recommend() serves them.
    warm = np.asarray([c.size > 0 for c, _ in lists])
    cand_ranks = np.where(warm, list_ranks(lists, cases, space), pop_ranks)

    features = user_feature_rows(dataset, cases, positions, seqs)
    examples = examples_for(lists, cases, space, features)
    scored = ranker.score_batch(examples.features, examples.candidates, examples.ann_scores)
    targets = space.index_of[cases.targets]
    pipe_ranks = np.asarray(
        [
            rank_in_list(c[rank(s, c, c.size)], t) if t >= 0 and c.size else -1
            for c, s, t in zip(examples.candidates, scored, targets.tolist(), strict=True)
        ]
    )
    pipe_ranks = np.where(warm, pipe_ranks, pop_ranks)

    labels = np.concatenate([y for y in examples.labels if y.size])
    ranker_scores = np.concatenate([s for s in scored if s.size])
    ann_scores = np.concatenate([a for a in examples.ann_scores if a.size])
    groups = np.concatenate([np.full(y.size, i) for i, y in enumerate(examples.labels) if y.size])
    k = config.num_candidates
    metrics = {
        "popularity": metrics_row(pop_ranks),
        "item_knn": metrics_row(knn_ranks),
        "candidates": {**metrics_row(cand_ranks), "recall@100": hit_rate(cand_ranks, 100)},
        "pipeline": {
            **metrics_row(pipe_ranks),
            "recall@100": hit_rate(pipe_ranks, 100),
            "auc": auc(labels, ranker_scores),
            "gauc": grouped_auc(labels, ranker_scores, groups),
        },
    }
    metrics["candidates"]["auc"] = auc(labels, ann_scores)
    metrics["candidates"]["gauc"] = grouped_auc(labels, ann_scores, groups)
    details = {
        "num_candidates": k,
        "cold_users": int((~warm).sum()),
        "lists_with_target": int(sum(int(y.any()) for y in examples.labels)),
        "ndcg@100_candidates": ndcg(cand_ranks, 100),
        "auc_note": "auc pools all test candidate lists; gauc averages per-list AUC over lists holding the target; "
        "the candidates row scores the same lists with the raw ANN score",
    }
    return metrics, details


def _user_seed(
    dataset: Dataset, seqs: UserSequences, space: ModelSpace, item_ids: Sequence[str]
) -> Sequence[tuple[str, list[str], dict[str, str]]]:
    inter = dataset.interactions
    out = []
    for user in range(seqs.num_users):
        lo, hi = int(seqs.offsets[user]), int(seqs.offsets[user + 1])
        recent = space.history(seqs.items[lo:hi])[-MAX_SEED_EVENTS:]
        user_id = inter.user_ids[user]
        features = dataset.user_features.get(user_id, {})
        if recent.size or features:
            out.append((user_id, [item_ids[i] for i in recent.tolist()], dict(features)))
    return out


def json_safe(value: Any) -> Any:
    """NaN/inf (e.g. an AUC without positives) become null: strict JSON readers reject NaN."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _strip_trials(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "trials"}


def _eval_markdown(
    table: str,
    evaluation: Mapping[str, Any],
    scoring: str,
    ann: Mapping[str, Any],
    features: Mapping[str, Any],
) -> str:
    validation = evaluation["validation"]["candidates"]["scoring"]
    recall = ann[f"recall@{ann['k']}"]
    lines = [
        "# Offline evaluation",
        "",
        evaluation["protocol"] + ".",
        "",
        table,
        f"Scoring vectors: **{scoring}** (validation HR@10: "
        + ", ".join(f"{w} {m['hr@10']:.4f}" for w, m in validation.items())
        + ").",
        "",
        f"ANN ({ann['k']} neighbours): recall {recall:.3f}, p50 {ann['latency_p50_ms']:.3f} ms, "
        f"p99 {ann['latency_p99_ms']:.3f} ms.",
        "",
        f"Ranker features: user {features['user_features']}, item {features['item_features']}"
        + (f"; dropped {features['dropped']}" if features["dropped"] else "")
        + ".",
        "",
    ]
    return "\n".join(lines)
