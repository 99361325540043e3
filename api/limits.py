"""Limits of one API process: open WebSockets per key (operator keys exempt) and the
request body size (for everyone)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

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


class FailedAuthLimit:
    """Requests without a valid key, per client address, in this API process: past
    `per_minute` of them (in bursts of up to that many) they answer 429 without a query
    per key (api/auth.py), so a flood of bad keys costs next to nothing. Valid keys are
    neither counted nor refused."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self._clock = per_minute, clock
        self._next_free: dict[str, float] = {}  # client → when its bucket is full again (GCRA)

    def blocked_for(self, client: str) -> float:
        """Seconds until `client` may fail again (0: it may now)."""
        now = self._clock()
        over = max(self._next_free.get(client, now), now) + 60.0 / self.per_minute - now - 60.0
        return max(over, 0.0)

    def failed(self, client: str) -> None:
        now, interval = self._clock(), 60.0 / self.per_minute
        if len(self._next_free) > 100_000:  # forget idle clients rather than grow
            self._next_free = {c: t for c, t in self._next_free.items() if t > now}
        self._next_free[client] = max(self._next_free.get(client, now), now) + interval


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
