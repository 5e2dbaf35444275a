"""CandidateService: protobuf ⇄ domain."""

from __future__ import annotations

from recserve.candidates.availability import UnavailableItems
from recserve.candidates.search import CandidateQuery, search
from recserve.candidates.side_index import ColdStartItems
from recserve.model import Bundle
from recserve.runtime.errors import require_at_most
from recserve.runtime.metrics import QUERIES
from recserve.runtime.model_watch import ModelRegistry
from recserve.runtime.server import Method, RpcContext, Service
from recserve.v1 import candidates_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["CandidateService"]


class CandidateServicer:
    def __init__(
        self,
        models: ModelRegistry[Bundle],
        unavailable: UnavailableItems,
        cold: ColdStartItems | None = None,
        *,
        max_candidates: int,
        max_queries: int,
        max_exclude: int,
    ):
        self._models = models
        self._unavailable = unavailable
        self._cold = cold
        self._max_candidates = max_candidates
        self._max_queries = max_queries
        self._max_exclude = max_exclude

    async def search_candidates(
        self, request: pb.SearchCandidatesRequest, _: RpcContext
    ) -> pb.SearchCandidatesResponse:
        QUERIES.inc(len(request.queries))
        require_at_most(len(request.queries), self._max_queries, "queries")
        for position, query in enumerate(request.queries):
            require_at_most(
                len(query.exclude_item_ids),
                self._max_exclude,
                f"queries[{position}].exclude_item_ids",
            )
        version, bundle = self._models.get(request.model_version)
        results = search(
            bundle,
            [
                CandidateQuery(q.query_vector_f32, q.item_id, q.exclude_item_ids, q.num_candidates)
                for q in request.queries
            ],
            max_candidates=self._max_candidates,
            unavailable=self._unavailable.of(version, bundle),
            side=None if self._cold is None else self._cold.index(bundle),
        )
        item_ids = bundle.item_ids
        return pb.SearchCandidatesResponse(
            model_version=version,
            results=[
                pb.CandidateList(
                    item_ids=[
                        r.cold_item_ids.get(p) or item_ids[i] for p, i in enumerate(r.item_indices)
                    ],
                    item_indices=[max(i, 0) for i in r.item_indices],
                    cold_start=[p in r.cold_item_ids for p in range(len(r.item_indices))]
                    if r.cold_item_ids
                    else [],
                    ann_scores=r.ann_scores,
                    unknown_item_ids=r.unknown_item_ids,
                )
                for r in results
            ],
        )

    def service(self) -> Service:
        return Service(
            SERVICE,
            [Method("SearchCandidates", pb.SearchCandidatesRequest, self.search_candidates)],
        )
