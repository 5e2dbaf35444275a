from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CandidateQuery(_message.Message):
    __slots__ = ("query_vector_f32", "item_id", "exclude_item_ids", "num_candidates")
    QUERY_VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    NUM_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    query_vector_f32: bytes
    item_id: str
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    num_candidates: int
    def __init__(self, query_vector_f32: _Optional[bytes] = ..., item_id: _Optional[str] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., num_candidates: _Optional[int] = ...) -> None: ...

class CandidateList(_message.Message):
    __slots__ = ("item_ids", "item_indices", "ann_scores", "unknown_item_ids", "cold_start")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    ITEM_INDICES_FIELD_NUMBER: _ClassVar[int]
    ANN_SCORES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    item_indices: _containers.RepeatedScalarFieldContainer[int]
    ann_scores: _containers.RepeatedScalarFieldContainer[float]
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    cold_start: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., item_indices: _Optional[_Iterable[int]] = ..., ann_scores: _Optional[_Iterable[float]] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ..., cold_start: _Optional[_Iterable[bool]] = ...) -> None: ...

class SearchCandidatesRequest(_message.Message):
    __slots__ = ("model_version", "queries")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    queries: _containers.RepeatedCompositeFieldContainer[CandidateQuery]
    def __init__(self, model_version: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[CandidateQuery, _Mapping]]] = ...) -> None: ...

class SearchCandidatesResponse(_message.Message):
    __slots__ = ("model_version", "results")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    results: _containers.RepeatedCompositeFieldContainer[CandidateList]
    def __init__(self, model_version: _Optional[str] = ..., results: _Optional[_Iterable[_Union[CandidateList, _Mapping]]] = ...) -> None: ...
