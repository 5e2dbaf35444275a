"""Catalog items and the validation every catalog write passes before anything is written."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from recserve.model.features import (
    MULTI_VALUE_SEPARATOR,
    NUMERIC_FEATURES,
    POPULARITY_FEATURE,
    RawValue,
)
from recserve.runtime.errors import InvalidArgument, require_at_most
from recserve.runtime.ids import require_ids

# Attribute names become trainer feature names and ranker tokens (`name=value`): no `=`, no
# spaces, bounded length, and none of the names the ranker already uses for its own features.
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RESERVED_ATTRIBUTE_NAMES = frozenset({POPULARITY_FEATURE, *NUMERIC_FEATURES})
MAX_ATTRIBUTE_VALUE_BYTES = 1024


@dataclass
class CatalogItem:
    """One catalog item.

    `available` None (writes only) keeps the stored availability; a new item is then available.
    Items read back always carry a bool. `updated_at_ms` is set by the store on every write.
    """

    item_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    numeric: dict[str, float] = field(default_factory=dict)
    available: bool | None = None
    updated_at_ms: int = 0


@dataclass(frozen=True)
class CatalogLimits:
    max_items_per_call: int = 1000
    # Categorical plus numeric attributes of one item.
    max_attributes_per_item: int = 64


def require_attribute_name(name: str, what: str) -> None:
    if not ATTRIBUTE_NAME.fullmatch(name):
        raise InvalidArgument(
            f"{what}: attribute names must match {ATTRIBUTE_NAME.pattern}", field=what
        )
    if name in RESERVED_ATTRIBUTE_NAMES:
        raise InvalidArgument(
            f"{what}: {name!r} is reserved for a ranker feature "
            f"({', '.join(sorted(RESERVED_ATTRIBUTE_NAMES))})",
            field=what,
        )


def validate_items(items: Sequence[CatalogItem], limits: CatalogLimits) -> None:
    """INVALID_ARGUMENT naming the first offending field (message and `field`), e.g.
    ``items[3].numeric_attributes["margin"] must be finite``; nothing is written before this
    passed for every item."""
    if not items:
        raise InvalidArgument("items must not be empty", field="items")
    require_at_most(len(items), limits.max_items_per_call, "items")
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"items[{index}]"
        require_ids([item.item_id], f"{where}.item_id")
        if item.item_id in seen:
            raise InvalidArgument(
                f"{where}.item_id {item.item_id!r} appears twice in one call",
                field=f"{where}.item_id",
            )
        seen.add(item.item_id)
        count = len(item.attributes) + len(item.numeric)
        if count > limits.max_attributes_per_item:
            raise InvalidArgument(
                f"{where} has {count} attributes; the limit is {limits.max_attributes_per_item}",
                field=where,
            )
        for name, value in item.attributes.items():
            at = f"{where}.attributes[{json.dumps(name)}]"
            require_attribute_name(name, at)
            if not value.strip():
                raise InvalidArgument(
                    f"{at} must not be empty (omit the attribute instead)", field=at
                )
            if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
                raise InvalidArgument(
                    f"{at} is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes", field=at
                )
        for name, number in item.numeric.items():
            at = f"{where}.numeric_attributes[{json.dumps(name)}]"
            require_attribute_name(name, at)
            if name in item.attributes:
                raise InvalidArgument(f"{at} is also a categorical attribute of the item", field=at)
            if not math.isfinite(number):
                raise InvalidArgument(f"{at} must be finite", field=at)


def items_from_features(
    item_ids: Sequence[str], features: Sequence[Mapping[str, RawValue]]
) -> Iterator[CatalogItem]:
    """Catalog items from a bundle's raw item features (what publish seeds): multi-valued
    features joined with MULTI_VALUE_SEPARATOR, as the trainer reads them back. Features that
    cannot be catalog attributes (invalid name, empty or oversized value) are left out."""
    for item_id, raw in zip(item_ids, features, strict=True):
        attributes: dict[str, str] = {}
        for name, value in raw.items():
            joined = value if isinstance(value, str) else MULTI_VALUE_SEPARATOR.join(value or ())
            if (
                ATTRIBUTE_NAME.fullmatch(name)
                and name not in RESERVED_ATTRIBUTE_NAMES
                and joined.strip()
                and len(joined.encode()) <= MAX_ATTRIBUTE_VALUE_BYTES
            ):
                attributes[name] = joined
        yield CatalogItem(item_id, attributes)
