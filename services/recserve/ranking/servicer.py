"""RankingService: protobuf ⇄ domain."""

from __future__ import annotations

from recserve.model import Bundle
from recserve.model.filters import ItemFilter
from recserve.ranking.rank import RankQuery, rank_queries
from recserve.runtime.errors import require_at_most
from recserve.runtime.metrics import QUERIES
from recserve.runtime.model_watch import ModelRegistry
from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import ranking_pb2 as pb
from recserve.v1 import types_pb2


class RankingServicer:
    def __init__(
        self, models: ModelRegistry[Bundle], *, max_candidates: int, max_queries: int, max_k: int
    ):
        self._models = models
        self._max_candidates = max_candidates
        self._max_queries = max_queries
        self._max_k = max_k

    async def rank_candidates(
        self, request: pb.RankCandidatesRequest, _: RpcContext
    ) -> pb.RankCandidatesResponse:
        QUERIES.inc(len(request.queries))
        require_at_most(len(request.queries), self._max_queries, "queries")
        for position, query in enumerate(request.queries):
            require_at_most(
                len(query.item_indices), self._max_candidates, f"queries[{position}].item_indices"
            )
        version, bundle = self._models.get(request.model_version)
        ranked = rank_queries(
            bundle,
            [
                RankQuery(
                    features=dict(q.features),
                    item_indices=q.item_indices,
                    ann_scores=q.ann_scores,
                    filters=[
                        ItemFilter(f.feature, frozenset(f.any_of), f.exclude) for f in q.filters
                    ],
                    k=q.k,
                    history_item_ids=q.history_item_ids,
                    request_time_s=q.request_time_ms / 1000 if q.request_time_ms else None,
                )
                for q in request.queries
            ],
            max_k=self._max_k,
        )
        item_ids = bundle.item_ids
        return pb.RankCandidatesResponse(
            model_version=version,
            results=[
                pb.RankedList(
                    items=[
                        types_pb2.ScoredItem(
                            item_id=item_ids[r.index],
                            score=r.score,
                            ann_score=r.ann_score,
                            ranker_score=r.score,
                        )
                        for r in items
                    ]
                )
                for items in ranked
            ],
        )

    def service(self) -> Service:
        return Service(
            pb.DESCRIPTOR.services_by_name["RankingService"],
            [Method("RankCandidates", pb.RankCandidatesRequest, self.rank_candidates)],
        )
