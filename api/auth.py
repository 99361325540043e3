"""Who is asking: the API key on a request (Authorization: Bearer …, or `token` on a
WebSocket), checked by the accounts service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from accounts.keys import Principal
from accounts.service import ApiKeys
from core.errors import OperatorRequired, Unauthenticated

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`order-engine keys create`; `order-engine dev` writes one to "
    "$ORDER_ENGINE_DATA_DIR/api-key).",
)


def key_from_connection(conn: HTTPConnection) -> str | None:
    """The header, or (browsers cannot set headers on a WebSocket) the `token` query
    parameter of a WebSocket handshake."""
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("token") or None
    return None


async def principal_of(conn: HTTPConnection) -> Principal | None:
    """The caller, or None without a valid key."""
    key = key_from_connection(conn)
    if key is None:
        return None
    keys: ApiKeys = conn.state.keys
    return await keys.verify(key)


async def authenticate(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if key_from_connection(request) is None:
        raise Unauthenticated("send your API key as `Authorization: Bearer <key>`")
    principal = await principal_of(request)
    if principal is None:
        raise Unauthenticated("this API key is unknown or revoked")
    return principal


async def require_operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.operator:
        raise OperatorRequired("this needs an operator key (`order-engine keys create --operator`)")
    return principal


KeyDep = Annotated[Principal, Depends(authenticate)]
OperatorDep = Annotated[Principal, Depends(require_operator)]
