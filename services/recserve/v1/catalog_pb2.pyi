from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VectorSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_SOURCE_UNSPECIFIED: _ClassVar[VectorSource]
    VECTOR_SOURCE_TRAINED: _ClassVar[VectorSource]
    VECTOR_SOURCE_COLD_START: _ClassVar[VectorSource]
    VECTOR_SOURCE_NONE: _ClassVar[VectorSource]
VECTOR_SOURCE_UNSPECIFIED: VectorSource
VECTOR_SOURCE_TRAINED: VectorSource
VECTOR_SOURCE_COLD_START: VectorSource
VECTOR_SOURCE_NONE: VectorSource

class CatalogItem(_message.Message):
    __slots__ = ("item_id", "attributes", "numeric_attributes", "available", "vector_source", "updated_at_ms")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class NumericAttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    attributes: _containers.ScalarMap[str, str]
    numeric_attributes: _containers.ScalarMap[str, float]
    available: bool
    vector_source: VectorSource
    updated_at_ms: int
    def __init__(self, item_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., numeric_attributes: _Optional[_Mapping[str, float]] = ..., available: _Optional[bool] = ..., vector_source: _Optional[_Union[VectorSource, str]] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...

class UpsertItemsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CatalogItem]
    def __init__(self, items: _Optional[_Iterable[_Union[CatalogItem, _Mapping]]] = ...) -> None: ...

class UpsertItemsResponse(_message.Message):
    __slots__ = ("created", "updated")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    created: int
    updated: int
    def __init__(self, created: _Optional[int] = ..., updated: _Optional[int] = ...) -> None: ...

class SetAvailabilityRequest(_message.Message):
    __slots__ = ("item_ids", "available")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    available: bool
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., available: _Optional[bool] = ...) -> None: ...

class SetAvailabilityResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: int
    def __init__(self, changed: _Optional[int] = ...) -> None: ...

class GetItemsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetItemsResponse(_message.Message):
    __slots__ = ("items", "unknown_item_ids")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CatalogItem]
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[CatalogItem, _Mapping]]] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...
