from recserve.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "recent_item_ids", "context", "k", "exclude_item_ids", "filters", "include_stage_scores", "boosts", "diversity")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STAGE_SCORES_FIELD_NUMBER: _ClassVar[int]
    BOOSTS_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    recent_item_ids: _containers.RepeatedScalarFieldContainer[str]
    context: _containers.ScalarMap[str, str]
    k: int
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.RepeatedCompositeFieldContainer[_types_pb2.ItemFilter]
    include_stage_scores: bool
    boosts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Boost]
    diversity: _types_pb2.Diversity
    def __init__(self, user_id: _Optional[str] = ..., recent_item_ids: _Optional[_Iterable[str]] = ..., context: _Optional[_Mapping[str, str]] = ..., k: _Optional[int] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., filters: _Optional[_Iterable[_Union[_types_pb2.ItemFilter, _Mapping]]] = ..., include_stage_scores: _Optional[bool] = ..., boosts: _Optional[_Iterable[_Union[_types_pb2.Boost, _Mapping]]] = ..., diversity: _Optional[_Union[_types_pb2.Diversity, _Mapping]] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "model_version", "degraded", "degraded_reason", "degraded_detail", "unknown_item_ids")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_DETAIL_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredItem]
    model_version: str
    degraded: bool
    degraded_reason: _types_pb2.DegradedReason
    degraded_detail: str
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[_types_pb2.ScoredItem, _Mapping]]] = ..., model_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[_Union[_types_pb2.DegradedReason, str]] = ..., degraded_detail: _Optional[str] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("user_id", "events")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.Event]
    def __init__(self, user_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_types_pb2.Event, _Mapping]]] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("accepted", "unknown_item_ids", "duplicates")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    duplicates: int
    def __init__(self, accepted: _Optional[int] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ..., duplicates: _Optional[int] = ...) -> None: ...

class GetSimilarItemsRequest(_message.Message):
    __slots__ = ("item_id", "k", "exclude_item_ids", "filters")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    k: int
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.RepeatedCompositeFieldContainer[_types_pb2.ItemFilter]
    def __init__(self, item_id: _Optional[str] = ..., k: _Optional[int] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., filters: _Optional[_Iterable[_Union[_types_pb2.ItemFilter, _Mapping]]] = ...) -> None: ...

class GetSimilarItemsResponse(_message.Message):
    __slots__ = ("items", "model_version", "degraded", "degraded_reason", "degraded_detail")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_DETAIL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredItem]
    model_version: str
    degraded: bool
    degraded_reason: _types_pb2.DegradedReason
    degraded_detail: str
    def __init__(self, items: _Optional[_Iterable[_Union[_types_pb2.ScoredItem, _Mapping]]] = ..., model_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[_Union[_types_pb2.DegradedReason, str]] = ..., degraded_detail: _Optional[str] = ...) -> None: ...
