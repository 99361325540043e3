"""Who is asking: the API key on a request (Authorization: Bearer …, or `token` on a
WebSocket), checked against the stored HMACs."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from api.errors import OperatorRequired, Unauthenticated
from core.api_keys import Principal, hash_key, is_well_formed
from storage.api_keys import find_principal

# A verified key is trusted this long without asking PostgreSQL again: a revoked key
# stops working within this many seconds, on every API process.
KEY_CACHE_TTL_S = 2.0
KEY_CACHE_MAX = 10_000

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`order-engine keys create`; `order-engine dev` writes one to "
    "$ORDER_ENGINE_DATA_DIR/api-key).",
)


class KeyVerifier:
    """Checks keys; one per API process."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], secret: str) -> None:
        self._sessions = sessions
        self._secret = secret
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def verify(self, key: str) -> Principal | None:
        if not is_well_formed(key):  # a typo or junk: no database round trip
            return None
        digest = hash_key(key, self._secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            principal = await find_principal(session, digest)
        if principal is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) >= KEY_CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (principal, now + KEY_CACHE_TTL_S)
        return principal


def key_from_connection(conn: HTTPConnection) -> str | None:
    """The header, or (browsers cannot set headers on a WebSocket) the `token` query
    parameter of a WebSocket handshake."""
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("token") or None
    return None


async def authenticate(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    key = key_from_connection(request)
    if key is None:
        raise Unauthenticated("send your API key as `Authorization: Bearer <key>`")
    verifier: KeyVerifier = request.state.keys
    principal = await verifier.verify(key)
    if principal is None:
        raise Unauthenticated("this API key is unknown or revoked")
    return principal


async def require_operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.operator:
        raise OperatorRequired("this needs an operator key (`order-engine keys create --operator`)")
    return principal


KeyDep = Annotated[Principal, Depends(authenticate)]
OperatorDep = Annotated[Principal, Depends(require_operator)]
