"""Per-key abuse limits that hold across every API process: orders and strategies placed
per minute, quotes asked for per minute; each a GCRA token bucket in Redis (operator keys
are exempt)."""

from __future__ import annotations

import logging
import math
from enum import StrEnum

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


class RateBucket(StrEnum):
    """What a per-key rate counts; each is a bucket of its own in Redis."""

    PLACEMENTS = "orders"  # orders and strategies placed
    QUOTES = "quotes"

    def refusal(self, per_minute: int) -> str:
        what = "place {} orders or strategies" if self is RateBucket.PLACEMENTS else "ask for {} quotes"
        return f"this key may {what.format(per_minute)} a minute; retry later"


class KeyRateLimiter:
    """`per_minute` requests a minute per key, in bursts of up to a minute's worth.

    While Redis is down the limit is not checked (fails open, docs/decisions/0005): the
    order itself is in PostgreSQL, the system-wide rate still holds in Temporal and the
    per-owner cap on open orders in PostgreSQL."""

    def __init__(
        self,
        redis: Redis,
        per_minute: int,
        breaker: RedisBreaker,
        bucket: RateBucket = RateBucket.PLACEMENTS,
    ) -> None:
        self._take_one = redis.register_script(_TAKE_ONE)
        self.per_minute, self.bucket = per_minute, bucket
        self._breaker = breaker

    async def take(self, principal: Principal) -> None:
        if principal.operator:
            return
        answer = await self._breaker.attempt(
            self._take_one(
                keys=[f"ratelimit:{self.bucket}:{principal.key_id}"],
                args=[60_000 / self.per_minute, self.per_minute],
            ),
            f"the per-key {self.bucket} rate check",
        )
        wait_ms = int(answer or 0)
        if wait_ms > 0:
            raise RateLimited(
                self.bucket.refusal(self.per_minute),
                retry_after_s=max(1, math.ceil(wait_ms / 1000)),
            )
