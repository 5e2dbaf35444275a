from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DegradedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEGRADED_REASON_UNSPECIFIED: _ClassVar[DegradedReason]
    DEGRADED_REASON_COLD_START: _ClassVar[DegradedReason]
    DEGRADED_REASON_RANKING_UNAVAILABLE: _ClassVar[DegradedReason]
    DEGRADED_REASON_CANDIDATES_UNAVAILABLE: _ClassVar[DegradedReason]
    DEGRADED_REASON_EMBEDDING_STORE_UNAVAILABLE: _ClassVar[DegradedReason]
DEGRADED_REASON_UNSPECIFIED: DegradedReason
DEGRADED_REASON_COLD_START: DegradedReason
DEGRADED_REASON_RANKING_UNAVAILABLE: DegradedReason
DEGRADED_REASON_CANDIDATES_UNAVAILABLE: DegradedReason
DEGRADED_REASON_EMBEDDING_STORE_UNAVAILABLE: DegradedReason

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "ann_score", "ranker_score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ANN_SCORE_FIELD_NUMBER: _ClassVar[int]
    RANKER_SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    ann_score: float
    ranker_score: float
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., ann_score: _Optional[float] = ..., ranker_score: _Optional[float] = ...) -> None: ...

class ItemFilter(_message.Message):
    __slots__ = ("feature", "any_of", "exclude")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    feature: str
    any_of: _containers.RepeatedScalarFieldContainer[str]
    exclude: bool
    def __init__(self, feature: _Optional[str] = ..., any_of: _Optional[_Iterable[str]] = ..., exclude: _Optional[bool] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("item_id", "timestamp_ms", "event_type", "event_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    timestamp_ms: int
    event_type: str
    event_id: str
    def __init__(self, item_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., event_type: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class Boost(_message.Message):
    __slots__ = ("numeric_attribute", "weight")
    NUMERIC_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    numeric_attribute: str
    weight: float
    def __init__(self, numeric_attribute: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Diversity(_message.Message):
    __slots__ = ("attribute", "max_per_value", "mmr_lambda")
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_VALUE_FIELD_NUMBER: _ClassVar[int]
    MMR_LAMBDA_FIELD_NUMBER: _ClassVar[int]
    attribute: str
    max_per_value: int
    mmr_lambda: float
    def __init__(self, attribute: _Optional[str] = ..., max_per_value: _Optional[int] = ..., mmr_lambda: _Optional[float] = ...) -> None: ...
