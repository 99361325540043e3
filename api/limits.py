"""Limits of one API process: open WebSockets per key (operator keys exempt) and the
request body size (for everyone)."""

from __future__ import annotations

from collections import Counter

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts.keys import Principal
from api.problems import problem


class WebSocketSlots:
    """Open WebSockets per key, counted in this API process."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: Counter[str] = Counter()

    def acquire(self, principal: Principal) -> bool:
        if not principal.operator and self._open[principal.key_id] >= self.per_key:
            return False
        self._open[principal.key_id] += 1
        return True

    def release(self, principal: Principal) -> None:
        self._open[principal.key_id] -= 1
        if self._open[principal.key_id] <= 0:
            del self._open[principal.key_id]


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413 problem+json: by Content-Length
    before the app runs, or while a chunked body streams in (raised from `receive`, which
    the route turns into the same problem)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request bodies are capped at {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = problem(413, "payload_too_large", "Request body too large", detail)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
