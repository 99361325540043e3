"""Who is asking: the API key on a request (Authorization: Bearer …, or `token` on a
WebSocket), checked by the accounts service."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from accounts.keys import Principal
from accounts.service import ApiKeys
from api.limits import FailedAuthLimit
from core.errors import OperatorRequired, RateLimited, Unauthenticated

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


async def principal_of(conn: HTTPConnection) -> Principal:
    """Who is asking, for a request or a WebSocket. A valid key is always served; without
    one, Unauthenticated, or RateLimited once the client's address has sent too many
    requests without a valid key (those then cost no database query)."""
    failures: FailedAuthLimit = conn.state.failed_auth
    keys: ApiKeys = conn.state.keys
    client = conn.client.host if conn.client else "unknown"
    key = key_from_connection(conn)
    wait_s = failures.blocked_for(client)
    principal = await keys.verify(key, suspect=wait_s > 0) if key else None
    if principal is not None:
        return principal
    if wait_s > 0:
        raise RateLimited("too many requests without a valid API key from this address", math.ceil(wait_s))
    failures.failed(client)
    if key is None:
        raise Unauthenticated("send your API key as `Authorization: Bearer <key>`")
    raise Unauthenticated("this API key is unknown or revoked")


async def authenticate(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    return await principal_of(request)


async def operator_or_none(request: Request, timeout_s: float) -> Principal | None:
    """The operator whose key is on the request, if there is one; never refuses (a
    readiness probe sends no key) and never waits longer than `timeout_s` (the key's
    look-up needs PostgreSQL, which may be the dependency that is down)."""
    key = key_from_connection(request)
    if key is None:
        return None
    keys: ApiKeys = request.state.keys
    failures: FailedAuthLimit = request.state.failed_auth
    client = request.client.host if request.client else "unknown"
    blocked = failures.blocked_for(client) > 0
    try:
        principal = await asyncio.wait_for(keys.verify(key, suspect=blocked), timeout_s)
    except Exception:
        return None
    if principal is None and not blocked:
        failures.failed(client)
    return principal if principal is not None and principal.operator else None


async def require_operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.operator:
        raise OperatorRequired("this needs an operator key (`order-engine keys create --operator`)")
    return principal


KeyDep = Annotated[Principal, Depends(authenticate)]
OperatorDep = Annotated[Principal, Depends(require_operator)]
