"""The process's Redis client, with timeouts: a Redis that hangs (a stopped process, a
partition) makes calls fail within seconds instead of waiting forever; and a breaker for
best-effort calls, which then stop waiting on a Redis that just failed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT_S = 1.0
# Above the event stream's XREAD block (storage/events.py), so a quiet stream is no error.
READ_TIMEOUT_S = 3.0
HEALTH_CHECK_S = 15
BEST_EFFORT_TIMEOUT_S = 1.0
BREAK_FOR_S = 5.0


def connect_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=READ_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_S,
    )


class RedisBreaker:
    """Best-effort calls (an announcement, a rate check) wait at most a second, and for a
    few seconds after one failed they are not tried at all: a request never waits on a
    Redis that is down, and Redis is not hammered while it comes back."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    async def attempt(self, call: Awaitable[T], what: str) -> T | None:
        """`call`'s result, or None when Redis is down (now or a moment ago)."""
        if self.is_open:
            if asyncio.iscoroutine(call):
                call.close()
            return None
        try:
            return await asyncio.wait_for(call, BEST_EFFORT_TIMEOUT_S)
        except (RedisError, TimeoutError, OSError) as error:
            self._open_until = self._clock() + BREAK_FOR_S
            log.warning("%s skipped: Redis unavailable (%s); not trying for %.0f s", what, error, BREAK_FOR_S)
            return None
