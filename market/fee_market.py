"""The fee market as the processes see it: congestion per slot (the background wave, or
an operator's fixed level, kept in PostgreSQL so every process agrees) and the fee
levels of recent slots. The model itself is pure (market/fees.py)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from market.clock import SLOT_MS, MarketClock
from market.fees import LEVEL_WINDOW_SLOTS, FeeLevels, background_congestion, fee_levels
from storage.models import CongestionOverride, utcnow

# How stale a process's view of the operator's override may be.
OVERRIDE_TTL_S = 1.0


@dataclass(frozen=True)
class Congestion:
    level: float
    from_slot: int
    until_slot: int


class FeeMarket:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: MarketClock,
        seed: int,
        background_trades_per_s: float,
    ) -> None:
        self._sessions, self._clock = sessions, clock
        self._seed, self._background = seed, background_trades_per_s
        self._override: Congestion | None = None
        self._read_at = -math.inf
        self._levels: FeeLevels | None = None

    async def congestion_at(self, slot: int) -> float:
        override = await self.override()
        if override is not None and override.from_slot <= slot <= override.until_slot:
            return override.level
        return background_congestion(slot, self._background)

    async def levels(self) -> FeeLevels:
        """The fee levels now: percentiles of the fees landed in the last slots."""
        slot = self._clock.current_slot()
        if self._levels is None or self._levels.slot != slot:
            congestion = {
                s: await self.congestion_at(s) for s in range(slot - LEVEL_WINDOW_SLOTS + 1, slot + 1)
            }
            self._levels = fee_levels(self._seed, slot, congestion)
        return self._levels

    async def fix(self, level: float, duration_s: float) -> Congestion:
        """Hold congestion at `level` for `duration_s` from now (an operator's override).
        It counts as having held for the last LEVEL_WINDOW_SLOTS too, so that the fee
        levels show it at once rather than 8 s later."""
        now = self._clock.current_slot()
        fixed = Congestion(level, now - LEVEL_WINDOW_SLOTS + 1, now + math.ceil(duration_s * 1000 / SLOT_MS))
        async with self._sessions() as session, session.begin():
            values = {"level": level, "from_slot": fixed.from_slot, "until_slot": fixed.until_slot}
            await session.execute(
                insert(CongestionOverride)
                .values(id=1, set_at=utcnow(), **values)
                .on_conflict_do_update(index_elements=["id"], set_={**values, "set_at": utcnow()})
            )
        self._override, self._read_at, self._levels = fixed, time.monotonic(), None
        return fixed

    async def release(self) -> None:
        """Congestion follows the background load again."""
        async with self._sessions() as session, session.begin():
            await session.execute(delete(CongestionOverride))
        self._override, self._read_at, self._levels = None, time.monotonic(), None

    async def override(self) -> Congestion | None:
        if time.monotonic() - self._read_at > OVERRIDE_TTL_S:
            async with self._sessions() as session:
                row = await session.get(CongestionOverride, 1)
            self._override = Congestion(row.level, row.from_slot, row.until_slot) if row else None
            self._read_at, self._levels = time.monotonic(), None
        return self._override
