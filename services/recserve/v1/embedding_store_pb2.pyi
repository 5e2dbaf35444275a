from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemVector(_message.Message):
    __slots__ = ("item_id", "vector_f32")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    vector_f32: bytes
    def __init__(self, item_id: _Optional[str] = ..., vector_f32: _Optional[bytes] = ...) -> None: ...

class GetItemVectorsRequest(_message.Message):
    __slots__ = ("model_version", "item_ids")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_version: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetItemVectorsResponse(_message.Message):
    __slots__ = ("model_version", "vectors", "missing_item_ids")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    vectors: _containers.RepeatedCompositeFieldContainer[ItemVector]
    missing_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_version: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[ItemVector, _Mapping]]] = ..., missing_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpsertItemVectorsRequest(_message.Message):
    __slots__ = ("model_version", "vectors")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    vectors: _containers.RepeatedCompositeFieldContainer[ItemVector]
    def __init__(self, model_version: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[ItemVector, _Mapping]]] = ...) -> None: ...

class UpsertItemVectorsResponse(_message.Message):
    __slots__ = ("upserted",)
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    def __init__(self, upserted: _Optional[int] = ...) -> None: ...

class DeleteItemVectorsRequest(_message.Message):
    __slots__ = ("model_version", "item_ids")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_version: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteItemVectorsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class UserStateQuery(_message.Message):
    __slots__ = ("user_id", "recent_item_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    recent_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., recent_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUserStatesRequest(_message.Message):
    __slots__ = ("model_version", "queries")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    queries: _containers.RepeatedCompositeFieldContainer[UserStateQuery]
    def __init__(self, model_version: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[UserStateQuery, _Mapping]]] = ...) -> None: ...

class UserState(_message.Message):
    __slots__ = ("history_item_ids", "features", "query_vector_f32", "unknown_item_ids")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HISTORY_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    history_item_ids: _containers.RepeatedScalarFieldContainer[str]
    features: _containers.ScalarMap[str, str]
    query_vector_f32: bytes
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, history_item_ids: _Optional[_Iterable[str]] = ..., features: _Optional[_Mapping[str, str]] = ..., query_vector_f32: _Optional[bytes] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUserStatesResponse(_message.Message):
    __slots__ = ("model_version", "states")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    states: _containers.RepeatedCompositeFieldContainer[UserState]
    def __init__(self, model_version: _Optional[str] = ..., states: _Optional[_Iterable[_Union[UserState, _Mapping]]] = ...) -> None: ...

class AppendUserEventsRequest(_message.Message):
    __slots__ = ("user_id", "item_ids", "timestamps_ms", "event_types", "event_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_MS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    timestamps_ms: _containers.RepeatedScalarFieldContainer[int]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ..., timestamps_ms: _Optional[_Iterable[int]] = ..., event_types: _Optional[_Iterable[str]] = ..., event_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AppendUserEventsResponse(_message.Message):
    __slots__ = ("accepted", "unknown_item_ids", "duplicates")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    duplicates: int
    def __init__(self, accepted: _Optional[int] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ..., duplicates: _Optional[int] = ...) -> None: ...
