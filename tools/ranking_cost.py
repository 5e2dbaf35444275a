"""CPU per RankCandidates request in the ranking service's handler, with and without the
history features (docs/training.md, "Serving cost"). Indicative: this process's CPU time
(psutil) over a fixed number of requests, each parsed from bytes, ranked and serialized, so
only the gRPC transport (the same either way) is left out.

    .venv/bin/python -m tools.ranking_cost --bundles bundles [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path

import psutil

from recserve.model import Bundle, FeatureEncoder, Ranker, load_bundle
from recserve.model.bundle import iter_user_seed, newest_version
from recserve.model.features import BASE_NUMERIC
from recserve.model.features import MAX_HISTORY as MAX_RANK_HISTORY
from recserve.model.recommend import retrieve
from recserve.ranking.servicer import RankingServicer
from recserve.runtime.model_watch import ModelRegistry
from recserve.v1 import ranking_pb2 as pb


def base_bundle(bundle: Bundle) -> Bundle:
    """The same bundle with the ranker of before the history features (4 numeric columns,
    no history-length token, no item state)."""
    spec = dataclasses.replace(
        bundle.ranker.encoder.spec,
        numeric=BASE_NUMERIC,
        numeric_mean=(0.0,) * 4,
        numeric_scale=(1.0,) * 4,
        history_edges=(),
    )
    encoder = FeatureEncoder(spec, bundle.item_features, bundle.popularity)
    weights = bundle.ranker.weights[: spec.dim].copy()
    return dataclasses.replace(bundle, _ranker=Ranker(encoder, weights, bundle.ranker.intercept))


def requests(bundle: Bundle, count: int, with_history: bool) -> list[bytes]:
    """`count` one-query requests cycling over the seeded users: their 100 ANN candidates and,
    `with_history`, the history ids the gateway sends (the last MAX_RANK_HISTORY)."""
    users = [(events, features) for _, events, features in iter_user_seed(bundle) if events]
    index_of = bundle.item_index
    histories = [[index_of[i] for i in events] for events, _ in users]
    lists = retrieve(bundle.index, bundle.input_vectors, bundle.query, histories, 100)
    out = []
    for n in range(count):
        (events, features), (cands, ann) = users[n % len(users)], lists[n % len(users)]
        query = pb.RankQuery(
            features=features,
            item_indices=cands.tolist(),
            ann_scores=ann.tolist(),
            k=10,
            history_item_ids=events[-MAX_RANK_HISTORY:] if with_history else [],
        )
        out.append(pb.RankCandidatesRequest(queries=[query]).SerializeToString())
    return out


async def cpu_ms_per_request(bundle: Bundle, blobs: list[bytes]) -> float:
    models: ModelRegistry[Bundle] = ModelRegistry()
    models.add(bundle.version, bundle)
    servicer = RankingServicer(models, max_candidates=1000, max_queries=256, max_k=500)
    for blob in blobs[:200]:  # warm-up
        await servicer.rank_candidates(pb.RankCandidatesRequest.FromString(blob), None)  # type: ignore[arg-type]
    process = psutil.Process()
    before = process.cpu_times()
    for blob in blobs:
        response = await servicer.rank_candidates(pb.RankCandidatesRequest.FromString(blob), None)  # type: ignore[arg-type]
        response.SerializeToString()
    after = process.cpu_times()
    spent = (after.user - before.user) + (after.system - before.system)
    return 1000.0 * spent / len(blobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=Path("bundles"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bundle = load_bundle(args.bundles / newest_version(args.bundles))
    old = base_bundle(bundle)
    new_blobs = requests(bundle, args.requests, with_history=True)
    old_blobs = requests(bundle, args.requests, with_history=False)
    for round_ in range(args.rounds):
        before = asyncio.run(cpu_ms_per_request(old, old_blobs))
        after = asyncio.run(cpu_ms_per_request(bundle, new_blobs))
        print(
            f"round {round_ + 1}: before {before:.3f} ms/request, after {after:.3f} ms/request, "
            f"cost {after - before:+.3f} ms"
        )


if __name__ == "__main__":
    main()
