"""The simulated chain's time: epoch seconds from an injectable clock, and slots of 400 ms."""

from __future__ import annotations

import time
from collections.abc import Callable

SLOT_MS = 400


class MarketClock:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def current_slot(self) -> int:
        return int(self._clock() * 1000) // SLOT_MS
