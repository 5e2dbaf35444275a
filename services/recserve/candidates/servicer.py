"""CandidateService: protobuf ⇄ domain."""

from __future__ import annotations

from recserve.candidates.search import CandidateQuery, search
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
        *,
        max_candidates: int,
        max_queries: int,
        max_exclude: int,
    ):
        self._models = models
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
        )
        item_ids = bundle.item_ids
        return pb.SearchCandidatesResponse(
            model_version=version,
            results=[
                pb.CandidateList(
                    item_ids=[item_ids[i] for i in r.item_indices],
                    item_indices=r.item_indices,
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
