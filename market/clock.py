"""The simulated chain's time: epoch seconds from an injectable clock, and slots of 400 ms.
A slot's number is its block height (the simulation skips no slots)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

SLOT_MS = 400


class MarketClock:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock, self._sleep = clock, sleep

    def now(self) -> float:
        return self._clock()

    def current_slot(self) -> int:
        return int(self._clock() * 1000) // SLOT_MS

    async def after_slot(self, slot: int) -> int:
        """Wait until `slot` is over; the slot then current (later than `slot`)."""
        while (current := self.current_slot()) <= slot:
            await self._sleep(max((slot + 1) * SLOT_MS / 1000 - self._clock(), 0.001))
        return current
