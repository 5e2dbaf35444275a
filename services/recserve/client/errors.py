"""Typed errors: one exception class per status code a caller handles differently.

Each is a `grpc.RpcError` with grpc's own `code()` and `details()`, so code written against
plain grpc errors keeps working; `message` is the server's explanation (the status details).
"""

from __future__ import annotations

import grpc


class RecommenderError(grpc.RpcError):
    """A failed call. This base class itself stands for the codes without a subclass
    (UNKNOWN, INTERNAL, ...)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self._code = code
        self.message = message

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self.message


class InvalidArgument(RecommenderError):
    """The request is malformed or names something the model does not know; fix the request."""


class Unauthenticated(RecommenderError):
    """No or a wrong bearer token."""


class ResourceExhausted(RecommenderError):
    """Too large a request, or the server is shedding load; back off before calling again."""


class Unavailable(RecommenderError):
    """No replica could answer (already retried, within the retry budget, where idempotent).
    RecordEvents: the events may or may not have been stored; a retry may store them twice."""


class DeadlineExceeded(RecommenderError):
    """No answer within the call's timeout."""


class Cancelled(RecommenderError):
    """The call was cancelled, e.g. by a server that stopped while it was in flight."""


_BY_CODE: dict[grpc.StatusCode, type[RecommenderError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def error_for(call: grpc.Call) -> RecommenderError:
    """The typed error for a failed call (a sync `grpc.RpcError` or a `grpc.aio.AioRpcError`)."""
    code = call.code()
    return _BY_CODE.get(code, RecommenderError)(code, call.details() or "")
