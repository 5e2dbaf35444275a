"""Typed errors: one exception class per status code a caller handles differently.

Each is a `grpc.RpcError` with grpc's own `code()` and `details()`, so code written against
plain grpc errors keeps working; `message` is the server's explanation (the status details).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


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
    """The request is malformed or names something the model does not know; fix the request.

    `field_violations` are the `google.rpc.BadRequest` field violations of the status (each
    with `field`, e.g. "recent_item_ids", and `description`); empty when the server named none.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Sequence[error_details_pb2.BadRequest.FieldViolation] = (),
    ):
        super().__init__(code, message)
        self.field_violations = list(field_violations)


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


# INVALID_ARGUMENT is built by error_for, with its field violations.
_BY_CODE: dict[grpc.StatusCode, type[RecommenderError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def error_for(call: grpc.Call) -> RecommenderError:
    """The typed error for a failed call (a sync `grpc.RpcError` or a `grpc.aio.AioRpcError`)."""
    code = call.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(code, call.details() or "", _field_violations(call))
    return _BY_CODE.get(code, RecommenderError)(code, call.details() or "")


def _field_violations(call: grpc.Call) -> list[error_details_pb2.BadRequest.FieldViolation]:
    status = rpc_status.from_call(call)
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    for detail in status.details if status is not None else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations.extend(bad_request.field_violations)
    return violations
