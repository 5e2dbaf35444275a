"""User events as the embedding store keeps them, and their validation (shared by the gateway
and the embedding store, so both refuse the same input with the same message).

A user's events list (``RedisLayout.user_events_key``) holds one entry per event, newest first.
An event of the default type "" is stored as its bare item id: the encoding publish seeds
training histories with and older releases wrote, so those entries read as type "". A typed
event is ``0xFF <type> 0xFF <item id>``: 0xFF never occurs in UTF-8, so no item id (protobuf
strings are UTF-8) reads as a typed entry, and types are ASCII tokens, so the second 0xFF ends
the type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from recserve.runtime.config import ConfigError
from recserve.runtime.errors import InvalidArgument
from recserve.runtime.ids import require_ids

DEFAULT_EVENT_TYPE = ""
MAX_EVENT_TYPE_CHARS = 64
MAX_EVENT_ID_CHARS = 128
# ASCII only: event ids become Redis key suffixes and types are framed by 0xFF bytes.
_TOKEN = re.compile(r"[A-Za-z0-9._:-]+")
_TYPED = b"\xff"


@dataclass(frozen=True)
class UserEvent:
    item_id: str
    # Unix milliseconds; 0 means "now".
    timestamp_ms: int = 0
    event_type: str = DEFAULT_EVENT_TYPE
    # "" for none; otherwise stored at most once per user within the dedup TTL.
    event_id: str = ""


@dataclass(frozen=True)
class AppendResult:
    # Events of known items, duplicates included.
    accepted: int
    unknown_item_ids: Sequence[str]
    # Events whose event_id was already stored for the user: not stored again.
    duplicates: int


def encode_entry(item_id: str, event_type: str) -> bytes:
    if not event_type:
        return item_id.encode()
    return _TYPED + event_type.encode() + _TYPED + item_id.encode()


def decode_entry(raw: bytes) -> tuple[str, str]:
    """(item id, event type) of a stored entry."""
    if raw[:1] != _TYPED:
        return raw.decode(), DEFAULT_EVENT_TYPE
    event_type, _, item_id = raw[1:].partition(_TYPED)
    return item_id.decode(), event_type.decode()


def token_error(value: str, max_chars: int) -> str | None:
    """Why `value` is not a valid event type or event id, or None when it is (empty is valid:
    the default type / no id)."""
    if len(value) > max_chars:
        return f"is {len(value)} characters long; the limit is {max_chars}"
    if value and not _TOKEN.fullmatch(value):
        return f"{value!r} may only contain letters, digits and . _ : -"
    return None


def parse_event_types(raw: str, variable: str) -> frozenset[str]:
    """A comma-separated list of event types; ConfigError naming `variable` for a bad one."""
    types = frozenset(t.strip() for t in raw.split(",") if t.strip())
    for event_type in sorted(types):
        if error := token_error(event_type, MAX_EVENT_TYPE_CHARS):
            raise ConfigError(f"{variable}: event type {error}")
    return types


def validate_events(events: Sequence[UserEvent], name: Callable[[int, str], str]) -> None:
    """INVALID_ARGUMENT naming the field (`name(index, "event_id")`, e.g. ``events[2].event_id``)
    of the first bad item id, timestamp, event type or event id."""
    for index, event in enumerate(events):
        require_ids([event.item_id], name(index, "item_id"))
        if event.timestamp_ms < 0:
            field = name(index, "timestamp_ms")
            raise InvalidArgument(f"{field}={event.timestamp_ms} must be >= 0", field=field)
        for attribute, value, limit in (
            ("event_type", event.event_type, MAX_EVENT_TYPE_CHARS),
            ("event_id", event.event_id, MAX_EVENT_ID_CHARS),
        ):
            if error := token_error(value, limit):
                field = name(index, attribute)
                raise InvalidArgument(f"{field} {error}", field=field)


def history_types(trained: Iterable[str], configured: frozenset[str] | None) -> frozenset[str]:
    """Event types used as history: the default type "" always (publish seeds training histories
    untyped), plus `configured` (RECSERVE_HISTORY_EVENT_TYPES) when set, else the types the
    model version was trained on."""
    return frozenset({DEFAULT_EVENT_TYPE, *(trained if configured is None else configured)})
