"""What business objectives cost offline: NDCG@10 / HR@10 on the test split with each boost and
diversity setting applied, through the code the gateway runs (`recommend` over-fetching the
candidate list, then `apply_boosts` and `diversify` from `recserve.model.objectives`).

The model is the protocol's evaluation model (word2vec on the training events, ranker on the
validation lists), so the test events are unseen, as in `train`'s table.

    python -m recserve.training objectives-report [--attribute genre] [--out report.md]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recserve.items import ScoredItem
from recserve.model.bundle import Bundle, popular_order
from recserve.model.features import MULTI_VALUE_SEPARATOR, RawValue
from recserve.model.objectives import (
    Boost,
    Diversity,
    apply_boosts,
    attribute_values,
    diversify,
)
from recserve.model.recommend import recommend
from recserve.training.config import Progress, TrainConfig
from recserve.training.data import DataError
from recserve.training.evaluation import metrics_row
from recserve.training.pipeline import evaluation_model, fit_ranking_model, user_feature_rows

K = 10
# The seeded synthetic numeric attribute (MovieLens has no margin): uniform in [0, 1).
MARGIN = "margin"
BOOST_WEIGHTS = (0.01, 0.1, 1.0)
CAPS = (1, 2, 3)
MMR_LAMBDAS = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Setting:
    name: str
    boosts: tuple[Boost, ...] = ()
    diversity: Diversity | None = None


def settings(attribute: str, numeric: Sequence[str]) -> list[Setting]:
    """None, caps 1/2/3 per value, MMR λ 0.3/0.5/0.7, each numeric boost at 0.01/0.1/1."""
    out = [Setting("none")]
    out += [Setting(f"cap {c} per {attribute}", diversity=Diversity(attribute, c)) for c in CAPS]
    out += [
        Setting(f"MMR λ={lam} ({attribute} overlap)", diversity=Diversity(attribute, 0, lam))
        for lam in MMR_LAMBDAS
    ]
    out += [
        Setting(f"boost {name} x {w}", boosts=(Boost(name, w),))
        for name in numeric
        for w in BOOST_WEIGHTS
    ]
    return out


def catalog_attributes(features: Mapping[str, RawValue]) -> dict[str, str]:
    """Item features as catalog attributes hold them: lists joined with '|'."""
    return {
        name: value if isinstance(value, str) else MULTI_VALUE_SEPARATOR.join(value)
        for name, value in features.items()
        if value
    }


def _numbers(features: Mapping[str, str], names: Sequence[str]) -> dict[str, float]:
    out = {}
    for name in names:
        try:
            out[name] = float(features[name])
        except (KeyError, ValueError):
            continue
    return out


@dataclass
class ReportRow:
    setting: str
    metrics: dict[str, float]


def objectives_report(
    config: TrainConfig,
    attribute: str | None = None,
    year_attribute: str | None = None,
    say: Progress | None = None,
) -> tuple[list[ReportRow], str]:
    """Trains the evaluation model and scores every `settings` row on the test users; returns
    the rows and the markdown table. `attribute` None = "genre" or "class" (MovieLens /
    RecBole's name for the genres); `year_attribute` None = "year" or "release_year"."""
    say = say or Progress()
    model = evaluation_model(config, say)
    data, emb, space, holdout, index = (
        model.data,
        model.emb,
        model.space,
        model.holdout,
        model.index,
    )
    fitted = fit_ranking_model(config, data, space, holdout, model.lists(config, holdout.val), say)

    inter = data.dataset.interactions
    item_ids = [inter.item_ids[c] for c in space.codes.tolist()]
    features = [data.dataset.item_features.get(i, {}) for i in item_ids]
    popularity = data.train_counts[space.codes].astype(np.int64)
    bundle = Bundle(
        path=Path("<evaluation model>"),
        manifest={
            "version": "evaluation",
            "dim": int(emb.input.shape[1]),
            "serving": {"num_candidates": config.num_candidates},
        },
        item_ids=item_ids,
        popular=popular_order(popularity),
        popularity=popularity,
        query=config.query,
        _input_vectors=emb.input,
        _index=index,
        _ranker=fitted.ranker,
        _item_features=features,
    )
    attributes = {i: catalog_attributes(f) for i, f in zip(item_ids, features, strict=True)}
    names = {n for f in attributes.values() for n in f}
    attribute = attribute or _first(("genre", "class"), names, "--attribute")
    numeric_names = [MARGIN]
    year = year_attribute or next((n for n in ("year", "release_year") if n in names), None)
    if year:
        numeric_names.append(year)
    margin = np.random.default_rng(config.seed).random(len(item_ids))
    numeric = {
        item_id: {MARGIN: float(m), **_numbers(attributes[item_id], numeric_names[1:])}
        for item_id, m in zip(item_ids, margin.tolist(), strict=True)
    }
    rows = score_settings(
        bundle,
        [space.history(h) for h in holdout.test.histories],
        user_feature_rows(data.dataset, holdout.test, holdout.test_pos, data.seqs),
        [inter.item_ids[t] for t in holdout.test.targets.tolist()],
        settings(attribute, numeric_names),
        attributes.__getitem__,
        numeric.__getitem__,
        attribute,
        data.seqs.timestamps[holdout.test_pos].tolist(),
    )
    users = len(holdout.test.targets)
    title = (
        f"{data.dataset.name}, test split (last event per user), {users:,} users; "
        f"diversity on `{attribute}`, boosts on `{MARGIN}` (seeded synthetic, uniform [0, 1))"
        + (f" and `{year}`" if year else "")
    )
    return rows, markdown(rows, title, attribute)


def _first(choices: Sequence[str], names: set[str], option: str) -> str:
    found = next((c for c in choices if c in names), None)
    if found is None:
        raise DataError(f"the items have none of {list(choices)}: pass {option}")
    return found


def score_settings(
    bundle: Bundle,
    histories: Sequence[np.ndarray],
    user_features: Sequence[Mapping[str, str]],
    targets: Sequence[str],
    rows: Sequence[Setting],
    attribute_lookup: Callable[[str], Mapping[str, str]],
    numeric_lookup: Callable[[str], Mapping[str, float]],
    attribute: str,
    times: Sequence[float],
) -> list[ReportRow]:
    """Per user: `recommend` at the held-out event's time (`times`, as train's evaluation
    ranks) with k = the bundle's candidate count (what the gateway asks for when a request
    reorders), then each setting's boosts and diversity, top K. Metrics: HR@K,
    NDCG@K of the held-out target; mean answer length; mean distinct `attribute` values in the
    answer; mean of each boosted attribute over the answer."""
    ranks = {s.name: np.full(len(targets), -1, dtype=np.int64) for s in rows}
    extra: dict[str, dict[str, list[float]]] = {s.name: {} for s in rows}
    numeric_names = sorted({b.numeric_attribute for s in rows for b in s.boosts})
    for user, (history, feats, target, now) in enumerate(
        zip(histories, user_features, targets, times, strict=True)
    ):
        answer_list = recommend(
            bundle, history.tolist(), feats, bundle.num_candidates, now=float(now)
        )
        ranked = [
            ScoredItem(bundle.item_ids[i], score, ann_score=ann, ranker_score=score)
            for i, score, ann in answer_list
        ]
        for setting in rows:
            boosted = apply_boosts(ranked, numeric_lookup, setting.boosts)
            answer = [i.item_id for i in diversify(boosted, attribute_lookup, setting.diversity, K)]
            ranks[setting.name][user] = answer.index(target) if target in answer else -1
            seen = frozenset[str]().union(
                *(attribute_values(attribute_lookup(i), attribute) for i in answer)
            )
            measures = extra[setting.name]
            measures.setdefault("length", []).append(len(answer))
            measures.setdefault("distinct", []).append(len(seen))
            for name in numeric_names:
                values = [numeric_lookup(i).get(name, 0.0) for i in answer]
                measures.setdefault(name, []).append(float(np.mean(values)) if values else 0.0)
    out = []
    for setting in rows:
        row = metrics_row(ranks[setting.name], k=K)
        row.update({name: float(np.mean(v)) for name, v in extra[setting.name].items()})
        out.append(ReportRow(setting.name, row))
    return out


def markdown(rows: Sequence[ReportRow], title: str, attribute: str) -> str:
    base = rows[0].metrics
    numeric = [n for n in rows[0].metrics if n not in ("hr@10", "ndcg@10", "length", "distinct")]
    header = [
        "setting",
        "NDCG@10",
        "Δ NDCG@10",
        "HR@10",
        "Δ HR@10",
        "items",
        f"distinct {attribute}",
    ] + [f"mean {n}" for n in numeric]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        m = row.metrics
        cells = [
            row.setting,
            f"{m['ndcg@10']:.4f}",
            _relative(m["ndcg@10"], base["ndcg@10"]),
            f"{m['hr@10']:.4f}",
            _relative(m["hr@10"], base["hr@10"]),
            f"{m['length']:.2f}",
            f"{m['distinct']:.2f}",
            *(f"{m[n]:.3f}" for n in numeric),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _relative(value: float, base: float) -> str:
    return f"{(value - base) / base:+.1%}" if base else ""
