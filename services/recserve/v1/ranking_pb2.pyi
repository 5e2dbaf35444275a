from recserve.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RankQuery(_message.Message):
    __slots__ = ("features", "item_indices", "ann_scores", "filters", "k", "history_item_ids", "request_time_ms")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ITEM_INDICES_FIELD_NUMBER: _ClassVar[int]
    ANN_SCORES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    features: _containers.ScalarMap[str, str]
    item_indices: _containers.RepeatedScalarFieldContainer[int]
    ann_scores: _containers.RepeatedScalarFieldContainer[float]
    filters: _containers.RepeatedCompositeFieldContainer[_types_pb2.ItemFilter]
    k: int
    history_item_ids: _containers.RepeatedScalarFieldContainer[str]
    request_time_ms: int
    def __init__(self, features: _Optional[_Mapping[str, str]] = ..., item_indices: _Optional[_Iterable[int]] = ..., ann_scores: _Optional[_Iterable[float]] = ..., filters: _Optional[_Iterable[_Union[_types_pb2.ItemFilter, _Mapping]]] = ..., k: _Optional[int] = ..., history_item_ids: _Optional[_Iterable[str]] = ..., request_time_ms: _Optional[int] = ...) -> None: ...

class RankedList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredItem]
    def __init__(self, items: _Optional[_Iterable[_Union[_types_pb2.ScoredItem, _Mapping]]] = ...) -> None: ...

class RankCandidatesRequest(_message.Message):
    __slots__ = ("model_version", "queries")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    queries: _containers.RepeatedCompositeFieldContainer[RankQuery]
    def __init__(self, model_version: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[RankQuery, _Mapping]]] = ...) -> None: ...

class RankCandidatesResponse(_message.Message):
    __slots__ = ("model_version", "results")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    results: _containers.RepeatedCompositeFieldContainer[RankedList]
    def __init__(self, model_version: _Optional[str] = ..., results: _Optional[_Iterable[_Union[RankedList, _Mapping]]] = ...) -> None: ...
