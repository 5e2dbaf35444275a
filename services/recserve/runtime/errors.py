"""Domain errors that map to gRPC status codes; domain code raises these, never grpc errors."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: the message is returned to the caller as the status details."""


class InvalidArgument(ServiceError):
    """`field`, when given, is the path of the offending request field (e.g. `k`,
    `items[3].numeric_attributes["margin"]`); callers receive it as a `google.rpc.BadRequest`
    field violation next to the message."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class ResourceExhausted(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    """E.g. the requested model version is not loaded here."""


class Unavailable(ServiceError):
    """A dependency (Redis, a model) cannot answer right now; safe to retry."""


class Unauthenticated(ServiceError):
    pass


def require_at_most(count: int, limit: int, what: str) -> None:
    """The one per-request count limit of every service: more than `limit` items/ids/queries in
    field `what` is INVALID_ARGUMENT naming the field and the limit (the same request is refused
    the same way by the gateway and the backends). RESOURCE_EXHAUSTED is only for a whole message
    over RECSERVE_MAX_MESSAGE_BYTES (gRPC transport) and for load shedding."""
    if count > limit:
        raise InvalidArgument(f"{count} {what} in one request; the limit is {limit}", field=what)
