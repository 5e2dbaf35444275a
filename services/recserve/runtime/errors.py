"""Domain errors that map to gRPC status codes; domain code raises these, never grpc errors."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: the message is returned to the caller as the status details."""


class InvalidArgument(ServiceError):
    pass


class ResourceExhausted(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    """E.g. the requested model version is not loaded here."""


class Unavailable(ServiceError):
    """A dependency (Redis, a model) cannot answer right now; safe to retry."""


class Unauthenticated(ServiceError):
    pass


def require_at_most(count: int, limit: int, what: str) -> None:
    """RESOURCE_EXHAUSTED when a request carries more than `limit` of `what`."""
    if count > limit:
        raise ResourceExhausted(f"{count} {what} in one request; the limit is {limit}")
