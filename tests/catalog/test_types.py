"""Validation of catalog writes: every rule names the offending field."""

from __future__ import annotations

import math

import pytest

from recserve.catalog import CatalogItem, CatalogLimits, validate_items
from recserve.runtime.errors import InvalidArgument

LIMITS = CatalogLimits(max_items_per_call=3, max_attributes_per_item=2)


def test_valid_items_pass() -> None:
    validate_items(
        [
            CatalogItem("a", {"genre": "Comedy|Drama"}, {"margin": 0.3}),
            CatalogItem("b", {"brand.name-x_1": "Acme"}, available=False),
        ],
        LIMITS,
    )


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "items must not be empty"),
        ([CatalogItem(str(i)) for i in range(4)], "4 items in one request; the limit is 3"),
        ([CatalogItem("")], "items[0].item_id must not contain empty ids"),
        ([CatalogItem("x" * 300)], "items[0].item_id has an id longer than 256 bytes"),
        ([CatalogItem("a"), CatalogItem("a")], "items[1].item_id 'a' appears twice"),
        (
            [CatalogItem("a", {"x": "1", "y": "2"}, {"z": 1.0})],
            "items[0] has 3 attributes; the limit is 2",
        ),
        ([CatalogItem("a", {"has space": "1"})], 'items[0].attributes["has space"]: attribute'),
        ([CatalogItem("a", {"g=1": "1"})], 'items[0].attributes["g=1"]: attribute names must'),
        ([CatalogItem("a", {"x" * 65: "1"})], "attribute names must match"),
        ([CatalogItem("a", {"": "1"})], 'items[0].attributes[""]: attribute names must'),
        ([CatalogItem("a", {"popularity": "1"})], "'popularity' is reserved"),
        ([CatalogItem("a", numeric={"ann_score": 1.0})], "'ann_score' is reserved"),
        ([CatalogItem("a", {"g": " "})], 'items[0].attributes["g"] must not be empty'),
        ([CatalogItem("a", {"g": "é" * 600})], "longer than 1024 bytes"),
        ([CatalogItem("a", {"m": "x"}, {"m": 1.0})], "also a categorical attribute"),
        (
            [CatalogItem("ok"), CatalogItem("b", numeric={"margin": math.nan})],
            'items[1].numeric_attributes["margin"] must be finite',
        ),
        ([CatalogItem("b", numeric={"m": math.inf})], 'numeric_attributes["m"] must be finite'),
        ([CatalogItem("b", numeric={"m": -math.inf})], 'numeric_attributes["m"] must be finite'),
    ],
)
def test_invalid_items_name_the_field(items: list[CatalogItem], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_items(items, LIMITS)
    assert message in str(caught.value)
    # The field path is in the message too.
    assert caught.value.field is not None and caught.value.field in str(caught.value)
