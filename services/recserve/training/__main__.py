"""python -m recserve.training train|publish|gc|synth|tune|bench-ann|objectives-report ...

Errors the user can fix (bad data, bad bundle, unreachable Redis) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import redis

from recserve.model.bundle import (
    Bundle,
    BundleError,
    gc_bundle_dirs,
    iter_user_seed,
    load_bundle,
    newest_version,
)
from recserve.model.query import QueryConfig
from recserve.training.config import Progress, TrainConfig, Word2VecParams
from recserve.training.data import DEFAULT_MAX_BAD_FRACTION, FORMATS, DataError, LoadOptions
from recserve.training.synthetic import SyntheticSpec

DEFAULTS = TrainConfig()
W2V = Word2VecParams()


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", help="dataset path (default: MovieLens-100K from --data-dir)")
    g.add_argument("--format", choices=FORMATS, help="input format (default: guessed from --data)")
    g.add_argument(
        "--data-dir", type=Path, default=DEFAULTS.data_dir, help="where MovieLens-100K is kept"
    )
    g.add_argument("--item-features", help="CSV/Parquet item feature table (item_id + columns)")
    g.add_argument("--user-features", help="CSV/Parquet user feature table (user_id + columns)")
    g.add_argument(
        "--catalog-redis",
        metavar="URL",
        help="read the live catalog from this Redis: its attributes become item features "
        "(the catalog wins on conflicts), its unavailable items leave the popular list",
    )
    g.add_argument(
        "--context-columns",
        default="",
        help="comma-separated per-event context columns (e.g. device)",
    )
    g.add_argument("--min-weight", type=float, help="drop events with weight below this")
    g.add_argument("--event-types", help="comma-separated event types to keep")
    g.add_argument(
        "--max-bad-fraction",
        type=float,
        default=DEFAULT_MAX_BAD_FRACTION,
        help="fail when more than this share of rows is unusable",
    )
    g.add_argument(
        "--synthetic-items", type=int, default=10_000, help="--format synthetic without --data"
    )
    g.add_argument("--synthetic-users", type=int, default=2_000)
    g.add_argument("--synthetic-events", type=int, default=200_000)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("word2vec")
    g.add_argument("--vector-size", type=int, default=W2V.vector_size)
    g.add_argument("--window", type=int, default=W2V.window)
    g.add_argument("--negative", type=int, default=W2V.negative)
    g.add_argument("--ns-exponent", type=float, default=W2V.ns_exponent)
    g.add_argument("--sample", type=float, default=W2V.sample)
    g.add_argument("--epochs", type=int, default=W2V.epochs)
    g.add_argument("--min-count", type=int, default=W2V.min_count)
    g.add_argument("--shrink-windows", type=_bool, default=W2V.shrink_windows)
    g.add_argument("--alpha", type=float, default=W2V.alpha)
    g.add_argument(
        "--workers", type=int, default=W2V.workers, help="0 = all cores; 1 = reproducible"
    )
    g.add_argument("--seed", type=int, default=DEFAULTS.seed)
    g.add_argument(
        "--session-gap",
        type=float,
        default=DEFAULTS.session_gap_seconds,
        help="inactivity gap in seconds that starts a new session (0 = one per user)",
    )
    g = p.add_argument_group("query, candidates and ranker")
    g.add_argument("--history-length", type=int, default=DEFAULTS.query.history_length)
    g.add_argument("--decay", type=float, default=DEFAULTS.query.decay)
    g.add_argument(
        "--scoring",
        choices=("auto", "output", "input"),
        default=DEFAULTS.scoring,
        help="score candidates with syn1neg output vectors, input vectors, or whichever validates better",
    )
    g.add_argument("--num-candidates", type=int, default=DEFAULTS.num_candidates)
    g.add_argument("--ranker-c", type=float, default=DEFAULTS.ranker_c, help="inverse L2 strength")
    g.add_argument("--cross-value", type=float, default=DEFAULTS.cross_value)
    g.add_argument("--token-value", type=float, default=DEFAULTS.token_value)
    g.add_argument("--hash-bits", type=int, default=DEFAULTS.hash_bits)
    g.add_argument("--ann-recall", type=float, default=DEFAULTS.ann_target_recall)
    g.add_argument(
        "--eval-users", type=int, default=DEFAULTS.eval_users, help="max users evaluated"
    )


def _config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        bundles=Path(getattr(args, "bundles", DEFAULTS.bundles)),
        data=args.data,
        fmt=args.format,
        data_dir=args.data_dir,
        item_features=args.item_features,
        user_features=args.user_features,
        catalog_redis=args.catalog_redis,
        load=LoadOptions(
            max_bad_fraction=args.max_bad_fraction,
            min_weight=args.min_weight,
            event_types=frozenset(args.event_types.split(",")) if args.event_types else None,
            context_columns=tuple(c for c in args.context_columns.split(",") if c),
        ),
        w2v=Word2VecParams(
            vector_size=args.vector_size,
            window=args.window,
            negative=args.negative,
            ns_exponent=args.ns_exponent,
            sample=args.sample,
            epochs=args.epochs,
            min_count=args.min_count,
            shrink_windows=args.shrink_windows,
            alpha=args.alpha,
            seed=args.seed,
            workers=args.workers,
        ),
        session_gap_seconds=args.session_gap,
        query=QueryConfig(history_length=args.history_length, decay=args.decay),
        scoring=args.scoring,
        num_candidates=args.num_candidates,
        ranker_c=args.ranker_c,
        cross_value=args.cross_value,
        token_value=args.token_value,
        hash_bits=args.hash_bits,
        ann_target_recall=args.ann_recall,
        eval_users=args.eval_users,
        seed=args.seed,
        synthetic=SyntheticSpec(
            items=args.synthetic_items,
            users=args.synthetic_users,
            events=args.synthetic_events,
            seed=args.seed,
        )
        if args.format == "synthetic" and args.data is None
        else None,
    )


def _redis(url: str) -> redis.Redis:
    """Sync client for publish/gc: fails fast, and honours the services' environment
    (RECSERVE_REDIS_PASSWORD overrides the URL's password; RECSERVE_REDIS_TLS_* files for
    a rediss:// URL)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    tls: dict[str, str] = {}
    if url.startswith("rediss://"):
        for env, arg in (
            ("CA_FILE", "ssl_ca_certs"),
            ("CERT_FILE", "ssl_certfile"),
            ("KEY_FILE", "ssl_keyfile"),
        ):
            if value := os.environ.get(f"RECSERVE_REDIS_TLS_{env}"):
                tls[arg] = value
    # redis-py retries for seconds by default; a CLI should fail fast with a clear message.
    pool = redis.ConnectionPool.from_url(
        url, socket_timeout=10, socket_connect_timeout=3, retry=Retry(NoBackoff(), 1), **tls
    )
    if password := os.environ.get("RECSERVE_REDIS_PASSWORD"):
        # from_url lets the URL's password win over keyword arguments; the contract is the
        # other way round.
        pool.connection_kwargs["password"] = password
    return redis.Redis(connection_pool=pool)


def cmd_train(args: argparse.Namespace) -> int:
    from recserve.training.pipeline import train

    progress = Progress()
    result = train(_config(args), progress)
    print(result.report_markdown)
    print(f"bundle: {result.bundle}")
    if args.redis_url:
        return _publish(result.bundle, args.redis_url, args.retention, progress)
    return 0


def _publish(path: Path, url: str, retention: int, progress: Progress) -> int:
    from recserve.model.redis_layout import publish_bundle

    bundle = load_bundle(path, parts={"vectors", "ranker"})
    histories: dict[str, list[str]] = {}
    features: dict[str, dict[str, str]] = {}
    for user_id, events, feats in iter_user_seed(bundle):
        histories[user_id] = events
        if feats:
            features[user_id] = feats
    # Before the switch, so the new version's items have catalog attributes when it goes live.
    seeded = asyncio.run(_seed_catalog(url, bundle))
    result = publish_bundle(
        _redis(url),
        bundle,
        retention=retention,
        user_histories=histories,
        user_features=features,
        progress=progress,
    )
    print(
        f"published {result.version} ({result.vectors:,} vectors, {result.users_seeded:,} users seeded, "
        f"{result.users_skipped:,} kept their online state) in {result.seconds:.1f}s; previous: {result.previous}"
    )
    print(f"catalog: {seeded:,} items added from the bundle (existing items kept)")
    if result.deleted_versions:
        print(f"deleted from Redis: {', '.join(result.deleted_versions)}")
    return 0


async def _seed_catalog(url: str, bundle: Bundle) -> int:
    """Adds the bundle's items the live catalog does not hold yet, with their features as
    attributes (CatalogStore.seed_missing never overwrites)."""
    from recserve.catalog import CatalogStore
    from recserve.catalog.types import items_from_features
    from recserve.runtime import redis_client
    from recserve.runtime.config import Env, RedisConfig

    config = RedisConfig.from_env(Env({**os.environ, "RECSERVE_REDIS_URL": url}))
    client = redis_client.connect(dataclasses.replace(config, socket_timeout_s=10))
    try:
        store = CatalogStore(client)
        return await store.seed_missing(items_from_features(bundle.item_ids, bundle.item_features))
    finally:
        await client.aclose()


def cmd_publish(args: argparse.Namespace) -> int:
    version = args.version or newest_version(args.bundles)
    return _publish(Path(args.bundles) / version, args.redis_url, args.retention, Progress())


def cmd_gc(args: argparse.Namespace) -> int:
    from recserve.model.redis_layout import active_version, gc_versions

    protect: list[str] = []
    if args.redis_url:
        client = _redis(args.redis_url)
        deleted = gc_versions(client, retention=args.retention)
        print(f"Redis: deleted {len(deleted)} versions {deleted}")
        active = active_version(client)
        protect = [active] if active else []
    removed = gc_bundle_dirs(args.bundles, keep=args.keep, protect=protect)
    print(f"{args.bundles}: removed {len(removed)} directories {removed}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from recserve.training.synthetic import generate

    spec = SyntheticSpec(
        items=args.items,
        users=args.users,
        events=args.events,
        seed=args.seed,
        clusters=args.clusters,
        popularity_exponent=args.popularity_exponent,
    )
    manifest = generate(spec, Path(args.out), fmt=args.out_format, say=Progress())
    print(json.dumps(manifest, indent=2))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from recserve.training.tuning import run

    params = [p for p in args.params.split(",") if p] or None
    result = run(
        _config(args), Path(args.out) if args.out else None, params, ranker=not args.no_ranker
    )
    print(json.dumps({k: v for k, v in result.items() if k not in ("trials", "ranker")}, indent=2))
    return 0


def cmd_bench_ann(args: argparse.Namespace) -> int:
    from recserve.training.synthetic import bench_ann

    print(
        json.dumps(
            bench_ann(args.items, args.dim, queries=args.queries, seed=args.seed, say=Progress()),
            indent=2,
        )
    )
    return 0


def cmd_objectives_report(args: argparse.Namespace) -> int:
    from recserve.training.objectives_report import objectives_report

    _rows, table = objectives_report(
        _config(args), attribute=args.attribute, year_attribute=args.year_attribute
    )
    if args.out:
        Path(args.out).write_text(table, encoding="utf-8")
    print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recserve.training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train", help="data -> embeddings -> index -> ranker -> evaluation -> bundle"
    )
    p.add_argument(
        "--bundles", default=str(DEFAULTS.bundles), help="root directory of bundle versions"
    )
    p.add_argument("--redis-url", help="publish the new bundle to this Redis when done")
    p.add_argument(
        "--retention", type=int, default=2, help="Redis versions to keep when publishing"
    )
    _add_data_args(p)
    _add_model_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "publish", help="load a bundle's vectors into Redis and make it the active version"
    )
    p.add_argument("--bundles", default=str(DEFAULTS.bundles))
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--version", help="bundle version (default: the newest in --bundles)")
    p.add_argument("--retention", type=int, default=2, help="published versions to keep in Redis")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "gc", help="delete old bundle directories (and old Redis versions with --redis-url)"
    )
    p.add_argument("--bundles", default=str(DEFAULTS.bundles))
    p.add_argument(
        "--keep",
        type=int,
        default=5,
        help="bundle directories to keep (the active one always stays)",
    )
    p.add_argument("--redis-url")
    p.add_argument("--retention", type=int, default=2)
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("synth", help="write a seeded synthetic dataset (streamed, any size)")
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--out-format", choices=("csv", "parquet"), default="parquet")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clusters", type=int, default=0, help="taste clusters (0 = about sqrt(items) / 2)"
    )
    p.add_argument(
        "--popularity-exponent", type=float, default=1.0, help="Zipf exponent of item popularity"
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("tune", help="sweep hyperparameters on the validation split")
    p.add_argument("--out", help="write all trials as JSON here")
    p.add_argument(
        "--params", default="", help="comma-separated word2vec parameters to sweep (default: all)"
    )
    p.add_argument("--no-ranker", action="store_true", help="skip the ranker cross-validation")
    _add_data_args(p)
    _add_model_args(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "bench-ann", help="ScaNN build time, memory, recall@10 and latency on synthetic vectors"
    )
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench_ann)

    p = sub.add_parser(
        "objectives-report",
        help="NDCG@10/HR@10 cost of diversity caps, MMR and boosts on the test split",
    )
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--attribute", help="item attribute to diversify on (default: genre, or class)")
    p.add_argument(
        "--year-attribute",
        help="numeric item attribute boosted besides the synthetic margin (default: year, or release_year)",
    )
    _add_data_args(p)
    _add_model_args(p)
    p.set_defaults(func=cmd_objectives_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (DataError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            print(f"error: Redis: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
