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

from recserve.model.ann import AnnIndex
from recserve.model.attribute_means import AttributeMeans
from recserve.model.bundle import EVAL_JSON, EVAL_MD, BundleContents, write_bundle
from recserve.model.features import FeatureEncoder, FeatureSpec
from recserve.model.query import QueryConfig, query_vector
from recserve.model.ranker import Ranker
from recserve.model.recommend import AnnCandidates, rank, retrieve
from recserve.training.ann_tuning import tune_index
from recserve.training.catalog import merge_catalog, read_catalog
from recserve.training.config import Progress, TrainConfig
from recserve.training.data import DataError, Dataset, load_dataset
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
    item_state_of,
    standardised_encoder,
)
from recserve.training.sequences import (
    Split,
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


def list_ranks(lists: Sequence[AnnCandidates], cases: EvalCases, space: ModelSpace) -> np.ndarray:
    targets = space.index_of[cases.targets]
    return np.asarray(
        [
            rank_in_list(c, t) if t >= 0 else -1
            for (c, _), t in zip(lists, targets.tolist(), strict=True)
        ]
    )


def examples_for(
    lists: Sequence[AnnCandidates],
    cases: EvalCases,
    space: ModelSpace,
    features: Sequence[Mapping[str, str]],
    times: np.ndarray | None = None,
) -> RankerExamples:
    """The lists as ranker examples; `times` are the held-out events' times (the request
    time the age features read; None: unknown)."""
    targets = space.index_of[cases.targets]
    return RankerExamples(
        features=list(features),
        candidates=[c for c, _ in lists],
        ann_scores=[a for _, a in lists],
        labels=[
            (c == t).astype(np.int8) for (c, _), t in zip(lists, targets.tolist(), strict=True)
        ],
        histories=[space.history(h) for h in cases.histories],
        times=[None] * len(lists) if times is None else [float(t) for t in times],
    )


def _sample(positions: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if positions.size <= limit:
        return positions
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(positions, size=limit, replace=False))


# ------------------------------------------------------------------------------- train


def load_training_data(config: TrainConfig, say: Callable[[str], None]) -> Dataset:
    """The data, merged with the live catalog when `config.catalog_redis` is set."""
    dataset = _read_data(config, say)
    if config.catalog_redis:
        merge_catalog(dataset, read_catalog(config.catalog_redis))
    return dataset


def _read_data(config: TrainConfig, say: Callable[[str], None]) -> Dataset:
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
    """Trains, evaluates and writes one bundle. The stages run in this order; each one's wall
    time is recorded under its name in `timings` (and the manifest)."""
    say = progress or Progress()
    data = load_and_split(config, say)
    say.stage("load")

    emb = fit_word2vec(
        config,
        data.seqs,
        data.split.train,
        "word2vec (evaluation model) on {:,} training events",
        say,
    )
    space = ModelSpace.of(emb, data.num_items)
    say.stage("word2vec_eval")

    holdout = sample_holdout(config, data)
    scoring = choose_scoring_vectors(config, emb, space, holdout.val, say)
    eval_index, eval_ann = tune_evaluation_index(config, emb, scoring, say)
    say.stage("index_eval")

    val_lists = candidate_lists(config, eval_index, emb, space, holdout.val)
    test_lists = candidate_lists(config, eval_index, emb, space, holdout.test)
    fitted = fit_ranking_model(config, data, space, holdout, val_lists, say)
    say.stage("ranker")

    evaluation = evaluate(
        config, data, space, holdout, val_lists, test_lists, fitted.ranker, scoring.report
    )
    say.stage("evaluate")

    everything = np.ones(data.seqs.items.size, dtype=bool)
    final = fit_word2vec(
        config, data.seqs, everything, "word2vec (served model) on all {:,} events", say
    )
    final_space = ModelSpace.of(final, data.num_items)
    say.stage("word2vec_final")

    final_index, final_ann = tune_served_index(
        config, data, final, final_space, scoring.vectors, say
    )
    say.stage("index_final")

    contents = bundle_contents(
        config,
        data,
        ServedModel(final, final_space, final_index),
        fitted,
        evaluation,
        scoring.vectors,
        {"served": final_ann, "evaluation": eval_ann},
        say.timings,
    )
    say.stage("bundle_prepare")
    path = write_bundle(config.bundles, contents)
    say.stage("bundle_write")
    say(f"bundle written: {path}")
    return TrainResult(
        bundle=path,
        metrics=evaluation.metrics,
        report_markdown=evaluation.table,
        timings=say.timings,
    )


# ------------------------------------------------------------------------------ stages


@dataclass
class TrainData:
    """The dataset, its events ordered per user by time, the leave-last-out split, and each
    item's event count over the training events."""

    dataset: Dataset
    seqs: UserSequences
    split: Split
    train_counts: np.ndarray

    @property
    def num_items(self) -> int:
        return len(self.dataset.interactions.item_ids)


def load_and_split(config: TrainConfig, say: Callable[[str], None]) -> TrainData:
    """Loads the data (reporting what was dropped), sorts each user's events by time and splits
    them leave-last-out; refuses data where no user has events to hold out."""
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
    train_counts = np.bincount(seqs.items[split.train], minlength=len(inter.item_ids))
    return TrainData(dataset, seqs, split, train_counts)


def fit_word2vec(
    config: TrainConfig,
    seqs: UserSequences,
    mask: np.ndarray,
    message: str,
    say: Callable[[str], None],
) -> ItemEmbeddings:
    """word2vec on the events in `mask` (one sentence per session); `message` is formatted with
    the number of events in the corpus."""
    with tempfile.TemporaryDirectory(prefix="recserve-train-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        tokens = write_corpus(corpus, seqs, mask, config.session_gap_seconds)
        say(message.format(tokens))
        return train_item2vec(corpus, config.w2v, say=say)


@dataclass
class Holdout:
    """The same sampled users' validation (second-to-last) and test (last) events: positions in
    the sorted events and the evaluation cases built from them."""

    val_pos: np.ndarray
    test_pos: np.ndarray
    val: EvalCases
    test: EvalCases


def sample_holdout(config: TrainConfig, data: TrainData) -> Holdout:
    """Up to `config.eval_users` users (seeded sample), each evaluated on validation and test."""
    users_pos = _sample(np.arange(data.split.val.size), config.eval_users, config.seed)
    val_pos, test_pos = data.split.val[users_pos], data.split.test[users_pos]
    return Holdout(
        val_pos, test_pos, eval_cases(data.seqs, val_pos), eval_cases(data.seqs, test_pos)
    )


@dataclass
class ScoringChoice:
    """Which item vectors the query (an input-vector mix) is scored against."""

    vectors: str  # "output" (syn1neg) or "input"
    report: dict[str, dict[str, float]]  # validation metrics of each choice tried
    warm_queries: np.ndarray  # validation query vectors of users with a known history


def choose_scoring_vectors(
    config: TrainConfig,
    emb: ItemEmbeddings,
    space: ModelSpace,
    cases: EvalCases,
    say: Callable[[str], None],
) -> ScoringChoice:
    """Exact full ranking of the validation cases with each allowed choice (`config.scoring`
    "auto" = output and input); keeps the better by HR@10, then NDCG@10."""
    queries, warm = query_matrix(emb, space, cases, config.query)
    choices = ["output", "input"] if config.scoring == "auto" else [config.scoring]
    report: dict[str, dict[str, float]] = {}
    for which in choices:
        report[which] = metrics_row(exact_ranks(queries, emb.scoring(which), cases, space))
    vectors = max(choices, key=lambda w: (report[w]["hr@10"], report[w]["ndcg@10"]))
    say(
        "validation, exact scoring: "
        + ", ".join(f"{w} HR@10 {m['hr@10']:.4f}" for w, m in report.items())
        + f" -> {vectors} vectors"
    )
    return ScoringChoice(vectors, report, queries[warm])


def tune_evaluation_index(
    config: TrainConfig, emb: ItemEmbeddings, scoring: ScoringChoice, say: Callable[[str], None]
) -> tuple[AnnIndex, dict[str, Any]]:
    """The evaluation model's ScaNN index over the chosen scoring vectors, tuned on up to
    ANN_TUNING_QUERIES validation query vectors."""
    return tune_index(
        emb.scoring(scoring.vectors),
        scoring.warm_queries[:ANN_TUNING_QUERIES],
        config.num_candidates,
        target_recall=config.ann_target_recall,
        say=say,
    )


def candidate_lists(
    config: TrainConfig, index: AnnIndex, emb: ItemEmbeddings, space: ModelSpace, cases: EvalCases
) -> list[AnnCandidates]:
    """The cases' ANN candidate lists, retrieved exactly as serving retrieves them."""
    histories = [space.history(h) for h in cases.histories]
    return retrieve(index, emb.input, config.query, histories, config.num_candidates)


@dataclass
class EvaluationModel:
    """The evaluation model as `train` builds it (word2vec on the training events, scoring
    choice, tuned index, holdout), for reports that refit only what comes after it."""

    data: TrainData
    emb: ItemEmbeddings
    space: ModelSpace
    holdout: Holdout
    scoring: ScoringChoice
    index: AnnIndex

    def lists(self, config: TrainConfig, cases: EvalCases) -> list[AnnCandidates]:
        return candidate_lists(config, self.index, self.emb, self.space, cases)


def evaluation_model(config: TrainConfig, say: Callable[[str], None]) -> EvaluationModel:
    data = load_and_split(config, say)
    emb = fit_word2vec(config, data.seqs, data.split.train, "word2vec on {:,} training events", say)
    space = ModelSpace.of(emb, data.num_items)
    holdout = sample_holdout(config, data)
    scoring = choose_scoring_vectors(config, emb, space, holdout.val, say)
    index, _ = tune_evaluation_index(config, emb, scoring, say)
    return EvaluationModel(data, emb, space, holdout, scoring, index)


@dataclass
class RankerFit:
    """The ranker trained on validation lists, with what the manifest reports about it."""

    ranker: Ranker  # its encoder covers the evaluation model's items
    feature_report: dict[str, Any]
    training_lists: int
    positives: int


def fit_ranking_model(
    config: TrainConfig,
    data: TrainData,
    space: ModelSpace,
    holdout: Holdout,
    val_lists: Sequence[AnnCandidates],
    say: Callable[[str], None],
    adjust: Callable[[FeatureSpec], FeatureSpec] | None = None,
) -> RankerFit:
    """Logistic regression on the validation candidate lists (events word2vec never saw):
    label 1 for the item the user took next, 0 for the other candidates. `adjust` changes the
    fitted feature spec (the feature ablation removes a group with it)."""
    dataset = data.dataset
    inter = dataset.interactions
    item_rows = [dataset.item_features.get(inter.item_ids[c], {}) for c in space.codes.tolist()]
    counts = data.train_counts[space.codes]
    spec, feature_report = fit_feature_spec(
        (dataset.user_features.get(u, {}) for u in inter.user_ids),
        item_rows,
        counts,
        hash_bits=config.hash_bits,
    )
    spec = replace(spec, cross_value=config.cross_value, token_value=config.token_value)
    if adjust is not None:
        spec = adjust(spec)
    examples = examples_for(
        val_lists,
        holdout.val,
        space,
        user_feature_rows(dataset, holdout.val, holdout.val_pos, data.seqs),
        data.seqs.timestamps[holdout.val_pos],
    )
    item_state = item_state_of(data.seqs, data.split.train, space.index_of)
    encoder = standardised_encoder(spec, item_rows, counts, examples, item_state)
    positives = int(sum(int(y.sum()) for y in examples.labels))
    say(
        f"ranker: logistic regression on {len(examples):,} validation candidate lists ({positives:,} positives)"
    )
    ranker = fit_ranker(
        encoder, examples, c=config.ranker_c, positive_weight=config.ranker_positive_weight
    )
    return RankerFit(ranker, feature_report, len(examples), positives)


PROTOCOL = (
    "chronological leave-last-out; full ranking over all items, seen items excluded; "
    "test = last event per user, validation = second-to-last"
)


@dataclass
class Evaluation:
    """The offline evaluation of the protocol model (written to eval.json and eval.md)."""

    metrics: dict[str, dict[str, float]]  # test metrics per method
    validation: dict[str, Any]  # candidate-list metrics on validation + the scoring choice
    details: dict[str, Any]
    users: int
    table: str  # markdown table of `metrics`

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "users": self.users,
            "metrics": self.metrics,
            "validation": self.validation,
            "details": self.details,
        }


def evaluate(
    config: TrainConfig,
    data: TrainData,
    space: ModelSpace,
    holdout: Holdout,
    val_lists: Sequence[AnnCandidates],
    test_lists: Sequence[AnnCandidates],
    ranker: Ranker,
    scoring_report: dict[str, dict[str, float]],
) -> Evaluation:
    """Every method on the test events (`evaluate_test`), the candidate lists on validation."""
    metrics, details = evaluate_test(config, data, holdout, test_lists, space, ranker)
    validation = {
        "candidates": {
            **metrics_row(list_ranks(val_lists, holdout.val, space)),
            "scoring": scoring_report,
        }
    }
    users = len(holdout.test.targets)
    table = markdown_table(
        metrics, title=f"{data.dataset.name}: test (last event per user), {users:,} users"
    )
    return Evaluation(metrics, validation, details, users, table)


def tune_served_index(
    config: TrainConfig,
    data: TrainData,
    emb: ItemEmbeddings,
    space: ModelSpace,
    scoring: str,
    say: Callable[[str], None],
) -> tuple[AnnIndex, dict[str, Any]]:
    """The served model's ScaNN index, tuned on query vectors of a sample of users' histories
    up to their last event."""
    last_events = data.seqs.offsets[1:][np.diff(data.seqs.offsets) > 0] - 1
    cases = eval_cases(data.seqs, _sample(last_events, ANN_TUNING_QUERIES, config.seed))
    queries, warm = query_matrix(emb, space, cases, config.query)
    return tune_index(
        emb.scoring(scoring),
        queries[warm],
        config.num_candidates,
        target_recall=config.ann_target_recall,
        say=say,
    )


@dataclass
class ServedModel:
    """The word2vec refit on every event, its item space and its ANN index."""

    emb: ItemEmbeddings
    space: ModelSpace
    index: AnnIndex


def bundle_contents(
    config: TrainConfig,
    data: TrainData,
    served: ServedModel,
    fitted: RankerFit,
    evaluation: Evaluation,
    scoring: str,
    ann: dict[str, dict[str, Any]],
    timings: dict[str, float],
) -> BundleContents:
    """What the bundle holds: the served model's items, vectors and index; the ranker's weights
    with popularity counted over all events; users' seeds; manifest and evaluation reports.
    `ann` has the "served" and "evaluation" index reports; `timings` is stored by reference,
    so stages finished before the bundle is written are in the manifest."""
    dataset = data.dataset
    inter = dataset.interactions
    item_ids = [inter.item_ids[c] for c in served.space.codes.tolist()]
    popularity = np.bincount(inter.items, minlength=len(inter.item_ids))[served.space.codes]
    items = [dataset.item_features.get(i, {}) for i in item_ids]
    scoring_vectors = served.emb.scoring(scoring)
    ranker = fitted.ranker
    served_ranker = Ranker(
        FeatureEncoder(
            ranker.encoder.spec,
            items,
            popularity,
            item_state_of(data.seqs, np.ones(data.seqs.items.size, bool), served.space.index_of),
        ),
        ranker.weights,
        ranker.intercept,
    )
    report = evaluation.to_dict()
    manifest = {
        "params": config.params(),
        "data": {
            "name": dataset.name,
            "fingerprint": inter.fingerprint(),
            "events": len(inter),
            "users": len(inter.user_ids),
            "items": len(inter.item_ids),
            "event_types": inter.event_types,
            "load_report": dataset.report.to_dict(),
        },
        "scoring_vectors": scoring,
        "metrics": json_safe(evaluation.metrics),
        "validation": json_safe(evaluation.validation),
        "ann": {name: _strip_trials(r) for name, r in ann.items()},
        "ranker": {
            **fitted.feature_report,
            "c": config.ranker_c,
            "training_lists": fitted.training_lists,
            "positives": fitted.positives,
        },
        "timings": timings,
    }
    return BundleContents(
        item_ids=item_ids,
        input_vectors=served.emb.input,
        popularity=popularity,
        query=config.query,
        num_candidates=config.num_candidates,
        index=served.index,
        ranker=served_ranker,
        item_features=items,
        popular_exclude=dataset.unavailable,
        manifest=manifest,
        scoring_vectors=None if scoring == "input" else scoring_vectors,
        # Popularity-weighted, rescaled means retrieved held-out items best (docs/training.md,
        # "Cold start").
        attribute_means=AttributeMeans.fit(items, served.emb.input, scoring_vectors, popularity),
        users=list(_user_seed(dataset, data.seqs, served.space, item_ids)),
        reports={
            EVAL_JSON: json.dumps(json_safe({**report, "ann": ann}), indent=2, allow_nan=False)
            + "\n",
            EVAL_MD: _eval_markdown(
                evaluation.table, report, scoring, ann["served"], fitted.feature_report
            ),
        },
    )


def evaluate_test(
    config: TrainConfig,
    data: TrainData,
    holdout: Holdout,
    lists: Sequence[AnnCandidates],
    space: ModelSpace,
    ranker: Ranker,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """All four methods on the test events of the same users, same protocol."""
    inter = data.dataset.interactions
    seqs, train_mask, cases = data.seqs, data.split.train, holdout.test
    pop_ranks = popularity_ranks(cases, data.train_counts)
    knn = ItemKnn(
        seqs.users[train_mask], seqs.items[train_mask], len(inter.user_ids), len(inter.item_ids)
    )
    knn_ranks = knn.ranks(cases)

    # Cold users (no known history) get the popularity list, as recommend() serves them.
    warm = np.asarray([c.size > 0 for c, _ in lists])
    cand_ranks = np.where(warm, list_ranks(lists, cases, space), pop_ranks)

    features = user_feature_rows(data.dataset, cases, holdout.test_pos, seqs)
    examples = examples_for(lists, cases, space, features, seqs.timestamps[holdout.test_pos])
    scored = ranker.score_batch(
        examples.features,
        examples.candidates,
        examples.ann_scores,
        examples.histories,
        examples.times,
    )
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
