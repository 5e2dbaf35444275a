"""Training-time and serving-time feature rows of the same input are identical.

Training builds its design matrix with the training code path; serving loads the bundle (its
per-item state arrays included) and encodes the same (user features, candidates, ANN scores,
history) through `Bundle.ranker`, and ranks through the ranking service's domain code. Every
numeric feature is checked to carry information (not a constant column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import expit

from recserve.model import AnnConfig, AnnIndex, QueryConfig, load_bundle
from recserve.model.bundle import BundleContents, write_bundle
from recserve.model.features import NUMERIC_FEATURES
from recserve.model.recommend import rank, retrieve
from recserve.ranking.rank import RankQuery, rank_queries
from recserve.training.data import load_dataset
from recserve.training.embeddings import train_item2vec
from recserve.training.pipeline import ModelSpace, eval_cases, examples_for, user_feature_rows
from recserve.training.ranker_training import (
    design_matrix,
    fit_feature_spec,
    fit_ranker,
    item_state_of,
    standardised_encoder,
)
from recserve.training.sequences import leave_last_out, sort_by_user_time, write_corpus

from .conftest import W2V


def test_training_and_serving_feature_rows_are_identical(
    tmp_path: Path, synthetic_dir: Path
) -> None:
    dataset = load_dataset(synthetic_dir)
    inter = dataset.interactions
    seqs = sort_by_user_time(inter)
    split = leave_last_out(seqs)
    write_corpus(tmp_path / "corpus.txt", seqs, split.train, 0)
    emb = train_item2vec(tmp_path / "corpus.txt", W2V)
    space = ModelSpace.of(emb, len(inter.item_ids))
    cases = eval_cases(seqs, split.val)
    index = AnnIndex.build(emb.output, AnnConfig())
    query = QueryConfig(history_length=5, decay=0.7)
    lists = retrieve(index, emb.input, query, [space.history(h) for h in cases.histories], 30)
    counts = np.bincount(seqs.items[split.train], minlength=len(inter.item_ids))[space.codes]
    rows = [dataset.item_features.get(inter.item_ids[c], {}) for c in space.codes.tolist()]
    spec, _ = fit_feature_spec(
        (dataset.user_features.get(u, {}) for u in inter.user_ids), rows, counts, hash_bits=14
    )
    examples = examples_for(
        lists,
        cases,
        space,
        user_feature_rows(dataset, cases, split.val, seqs),
        seqs.timestamps[split.val],
    )
    assert any("device" in f for f in examples.features)  # per-event context is part of the input
    assert spec.numeric == NUMERIC_FEATURES and spec.history_edges
    state = item_state_of(seqs, split.train, space.index_of)
    encoder = standardised_encoder(spec, rows, counts, examples, state)
    training_matrix, _ = design_matrix(encoder, examples)
    numeric = training_matrix[:, spec.hashed_dim :].toarray()
    varying = {name: float(numeric[:, j].std()) for j, name in enumerate(spec.numeric)}
    assert all(v > 0 for v in varying.values()), varying
    ranker = fit_ranker(encoder, examples, c=0.3)

    path = write_bundle(
        tmp_path / "bundles",
        BundleContents(
            item_ids=[inter.item_ids[c] for c in space.codes.tolist()],
            input_vectors=emb.input,
            popularity=counts,
            query=query,
            num_candidates=30,
            index=index,
            ranker=ranker,
            item_features=rows,
        ),
    )
    served = load_bundle(path, parts={"ranker"}).ranker
    kept = [i for i, c in enumerate(examples.candidates) if c.size]
    serving_matrix = sparse.vstack(
        [
            served.encoder.encode(
                examples.features[i],
                examples.candidates[i],
                examples.ann_scores[i],
                examples.histories[i],
                examples.times[i],
            )
            for i in kept
        ],
        format="csr",
    )
    np.testing.assert_array_equal(serving_matrix.indptr, training_matrix.indptr)
    np.testing.assert_array_equal(serving_matrix.indices, training_matrix.indices)
    np.testing.assert_array_equal(serving_matrix.data, training_matrix.data)

    scores = np.concatenate(
        served.score_batch(
            [examples.features[i] for i in kept],
            [examples.candidates[i] for i in kept],
            [examples.ann_scores[i] for i in kept],
            [examples.histories[i] for i in kept],
            [examples.times[i] for i in kept],
        )
    )
    expected = expit(training_matrix @ ranker.weights + ranker.intercept).astype(np.float32)
    np.testing.assert_array_equal(scores, expected)

    # The ranking service's domain code, fed item ids as the gateway sends them.
    bundle = load_bundle(path, parts={"ranker"})
    ids = bundle.item_ids
    queries = [
        RankQuery(
            features=examples.features[i],
            item_indices=examples.candidates[i].tolist(),
            ann_scores=examples.ann_scores[i].tolist(),
            filters=[],
            k=examples.candidates[i].size,
            history_item_ids=[ids[h] for h in examples.histories[i].tolist()],
            request_time_s=examples.times[i],
        )
        for i in kept
    ]
    offset = 0
    for i, ranked in zip(kept, rank_queries(bundle, queries, max_k=1000), strict=True):
        n = examples.candidates[i].size
        row_scores = expected[offset : offset + n]
        offset += n
        order = rank(row_scores, examples.candidates[i], n)
        assert [r.index for r in ranked] == examples.candidates[i][order].tolist()
        np.testing.assert_array_equal([r.score for r in ranked], row_scores[order])
