"""Abuse limits: orders per minute per key (across every API process, in Redis), open
WebSockets per key (per process) and order size, from which operator keys are exempt;
and a request body size cap for everyone."""

from __future__ import annotations

import logging
import math
from collections import Counter
from decimal import Decimal

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import InvalidOrder, RateLimited, problem
from core.api_keys import Principal
from market.simulation import SimulatedMarket
from market.valuation import sol_value

log = logging.getLogger(__name__)

# GCRA (a token bucket in one timestamp): a key may place `burst` orders at once, then
# one every `interval_ms`. Redis's clock, so every API process agrees.
_TAKE_ONE = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - burst * interval
if over > 0 then return over end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return 0
"""


class OrderRateLimiter:
    """`per_minute` orders a minute per key, in bursts of up to a minute's worth."""

    def __init__(self, redis: Redis, per_minute: int) -> None:
        self._take_one = redis.register_script(_TAKE_ONE)
        self.per_minute = per_minute

    async def take(self, principal: Principal) -> None:
        if principal.operator:
            return
        try:
            wait_ms = int(
                await self._take_one(
                    keys=[f"ratelimit:orders:{principal.key_id}"],
                    args=[60_000 / self.per_minute, self.per_minute],
                )
            )
        except RedisError as error:
            # Redis being down must not stop trading: the order itself is in PostgreSQL.
            log.warning("order rate limit not checked (Redis unavailable): %s", error)
            return
        if wait_ms > 0:
            raise RateLimited(
                f"this key may place {self.per_minute} orders a minute; retry later",
                retry_after_s=max(1, math.ceil(wait_ms / 1000)),
            )


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


async def check_order_size(
    principal: Principal, market: SimulatedMarket, token: str, amount: Decimal, max_sol: Decimal
) -> None:
    """Orders are capped at `max_sol` SOL-equivalent, at the pools' mid prices now."""
    if principal.operator:
        return
    pools = [] if token == "SOL" else await market.pools(token, "SOL")
    value = sol_value(pools, token, amount)
    if value is None:  # no SOL pool: price it through USDC
        pools = await market.pools(token, "USDC") + await market.pools("SOL", "USDC")
        value = sol_value(pools, token, amount)
    if value is not None and value > max_sol:
        raise InvalidOrder(
            "order_too_large",
            "amount",
            f"{amount} {token} is about {value:.0f} SOL; an order is capped at {max_sol} SOL-equivalent",
        )


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
