"""Everything serving needs from a trained model, without gRPC.

    from recserve.model import (Bundle, BundleError, load_bundle, QueryConfig, query_vector,
        AnnIndex, Ranker, recommend, RedisLayout, publish_bundle, active_version)

    b = load_bundle(path, parts={"index", "ranker", "vectors"})  # verifies SHA-256 of each file
    qv = query_vector(b.input_vectors[history], b.query)         # history: oldest first
    idx, ann = b.index.search_batched(qv[None], k)               # int32 [1,k], float32 [1,k]
    p = b.ranker.score(user_features, idx[0], ann[0])            # float32 probabilities
    recommend(b, history, user_features, k)                      # all stages, deterministic

Item indices are positions in ``b.item_ids``. See `recserve.model.recommend` for the exact
stage order the services reproduce, and `recserve.model.redis_layout` for the Redis keys.
"""

from recserve.model.ann import MAX_K, AnnConfig, AnnIndex
from recserve.model.bundle import Bundle, BundleError, load_bundle
from recserve.model.features import FeatureEncoder, FeatureSpec, FeatureTransform
from recserve.model.query import QueryConfig, query_vector
from recserve.model.ranker import Ranker
from recserve.model.recommend import recommend
from recserve.model.redis_layout import (
    PublishResult,
    RedisLayout,
    active_version,
    gc_versions,
    publish_bundle,
)

__all__ = [
    "MAX_K",
    "AnnConfig",
    "AnnIndex",
    "Bundle",
    "BundleError",
    "FeatureEncoder",
    "FeatureSpec",
    "FeatureTransform",
    "PublishResult",
    "QueryConfig",
    "Ranker",
    "RedisLayout",
    "active_version",
    "gc_versions",
    "load_bundle",
    "publish_bundle",
    "query_vector",
    "recommend",
]
