"""Per-method bearer tokens (the catalog's admin-only writes): auth_layer with several tokens or
none, and which tokens a Method ends up with."""

from __future__ import annotations

import pytest

from recserve.runtime import errors
from recserve.runtime.layers import auth_layer
from recserve.runtime.server import Method, _auth
from recserve.v1 import recommender_pb2 as pb
from tests.serving.test_runtime_layers import REPLY, make_call, ok


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_auth_layer_accepts_any_of_its_tokens() -> None:
    layer = auth_layer("read", "admin")
    for token in ("read", "admin"):
        assert await layer(make_call(metadata=bearer(token)), ok) is REPLY
    with pytest.raises(errors.Unauthenticated):
        await layer(make_call(metadata=bearer("readadmin")), ok)


async def test_auth_layer_without_tokens_refuses_everything() -> None:
    with pytest.raises(errors.Unauthenticated):
        await auth_layer()(make_call(metadata=bearer("")), ok)


async def _handler(request: object, context: object) -> pb.RecommendResponse:
    return REPLY


async def test_a_method_token_overrides_the_service_token() -> None:
    default = Method("Recommend", pb.RecommendRequest, _handler)
    admin = Method("Recommend", pb.RecommendRequest, _handler, auth_tokens=("admin",))
    closed = Method("Recommend", pb.RecommendRequest, _handler, auth_tokens=())
    assert _auth(default, None) == []
    (service_layer,) = _auth(default, "read")
    assert await service_layer(make_call(metadata=bearer("read")), ok) is REPLY
    for method in (admin, closed):
        for service_token in (None, "read"):
            (layer,) = _auth(method, service_token)
            with pytest.raises(errors.Unauthenticated):
                await layer(make_call(metadata=bearer("read")), ok)
    (layer,) = _auth(admin, "read")
    assert await layer(make_call(metadata=bearer("admin")), ok) is REPLY
