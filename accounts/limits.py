"""Per-key abuse limits that hold across every API process: orders placed per minute,
a GCRA token bucket in Redis (operator keys are exempt)."""

from __future__ import annotations

import logging
import math

from redis.asyncio import Redis

from accounts.keys import Principal
from core.errors import RateLimited
from storage.redis import RedisBreaker

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
    """`per_minute` orders a minute per key, in bursts of up to a minute's worth.

    While Redis is down the limit is not checked (fails open, docs/decisions/0005): the
    order itself is in PostgreSQL, the system-wide rate still holds in Temporal and the
    per-owner cap on open orders in PostgreSQL."""

    def __init__(self, redis: Redis, per_minute: int, breaker: RedisBreaker) -> None:
        self._take_one = redis.register_script(_TAKE_ONE)
        self.per_minute = per_minute
        self._breaker = breaker

    async def take(self, principal: Principal) -> None:
        if principal.operator:
            return
        answer = await self._breaker.attempt(
            self._take_one(
                keys=[f"ratelimit:orders:{principal.key_id}"],
                args=[60_000 / self.per_minute, self.per_minute],
            ),
            "the per-key order rate check",
        )
        wait_ms = int(answer or 0)
        if wait_ms > 0:
            raise RateLimited(
                f"this key may place {self.per_minute} orders a minute; retry later",
                retry_after_s=max(1, math.ceil(wait_ms / 1000)),
            )
