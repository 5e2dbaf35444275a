from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AnnIndexConfig(_message.Message):
    __slots__ = ("kind", "leaves", "leaves_to_search", "reorder", "spherical")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    REORDER_FIELD_NUMBER: _ClassVar[int]
    SPHERICAL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    leaves: int
    leaves_to_search: int
    reorder: int
    spherical: bool
    def __init__(self, kind: _Optional[str] = ..., leaves: _Optional[int] = ..., leaves_to_search: _Optional[int] = ..., reorder: _Optional[int] = ..., spherical: _Optional[bool] = ...) -> None: ...

class RankerInfo(_message.Message):
    __slots__ = ("user_features", "item_features", "weights")
    USER_FEATURES_FIELD_NUMBER: _ClassVar[int]
    ITEM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    user_features: _containers.RepeatedScalarFieldContainer[str]
    item_features: _containers.RepeatedScalarFieldContainer[str]
    weights: int
    def __init__(self, user_features: _Optional[_Iterable[str]] = ..., item_features: _Optional[_Iterable[str]] = ..., weights: _Optional[int] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("component", "active_version", "loaded_versions", "loaded_at_ms", "catalog_size", "dimensions", "index_config", "measured_recall", "recall_k", "ranker")
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOADED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    INDEX_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MEASURED_RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_K_FIELD_NUMBER: _ClassVar[int]
    RANKER_FIELD_NUMBER: _ClassVar[int]
    component: str
    active_version: str
    loaded_versions: _containers.RepeatedScalarFieldContainer[str]
    loaded_at_ms: int
    catalog_size: int
    dimensions: int
    index_config: AnnIndexConfig
    measured_recall: float
    recall_k: int
    ranker: RankerInfo
    def __init__(self, component: _Optional[str] = ..., active_version: _Optional[str] = ..., loaded_versions: _Optional[_Iterable[str]] = ..., loaded_at_ms: _Optional[int] = ..., catalog_size: _Optional[int] = ..., dimensions: _Optional[int] = ..., index_config: _Optional[_Union[AnnIndexConfig, _Mapping]] = ..., measured_recall: _Optional[float] = ..., recall_k: _Optional[int] = ..., ranker: _Optional[_Union[RankerInfo, _Mapping]] = ...) -> None: ...
