"""Validation of item/user ids shared by the gateway and the embedding store."""

from __future__ import annotations

from collections.abc import Iterable

from recserve.runtime.errors import InvalidArgument

# Ids become Redis keys; bounded so a caller cannot make the store hold huge keys.
MAX_ID_BYTES = 256


def require_ids(ids: Iterable[str], what: str) -> None:
    """INVALID_ARGUMENT naming `what` for an empty id or one longer than MAX_ID_BYTES."""
    for value in ids:
        if not value:
            raise InvalidArgument(f"{what} must not contain empty ids", field=what)
        # Encoding only when the length in characters could exceed the byte limit.
        if len(value) > MAX_ID_BYTES // 4 and len(value.encode()) > MAX_ID_BYTES:
            raise InvalidArgument(f"{what} has an id longer than {MAX_ID_BYTES} bytes", field=what)
