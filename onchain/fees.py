"""Priority-fee levels on a real cluster, from `getRecentPrioritizationFees` for the
accounts our swaps write (the pools): the same four levels the simulated fee market
gives (market/fees.py `FeeLevels`), so `priority_fee` modes work unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from solders.pubkey import Pubkey

from market.fees import FeeLevels
from onchain.rpc import SolanaRpc

# Percentiles of the recent slots' fees for low, medium, high and very high.
PERCENTILES = (25, 50, 75, 95)
FRESH_S = 2.0  # ~5 slots: levels move slowly, and each read is a round trip
MIN_MEDIUM = 1_000  # micro-lamports/CU: an idle cluster still gets a nudge


class ChainFees:
    def __init__(
        self,
        rpc: SolanaRpc,
        accounts: Callable[[], Sequence[Pubkey]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rpc, self._accounts, self._clock = rpc, accounts, clock
        self._levels: FeeLevels | None = None
        self._read_at = -FRESH_S

    async def levels(self) -> FeeLevels:
        if self._levels is None or self._clock() - self._read_at >= FRESH_S:
            fees = sorted(await self._rpc.prioritization_fees(list(self._accounts())[:128]))
            self._levels = fee_levels(fees)
            self._read_at = self._clock()
        return self._levels


def fee_levels(fees: Sequence[int]) -> FeeLevels:
    """Levels from the recent slots' prioritization fees (ascending or not)."""
    ordered = sorted(fees)

    def at(q: int) -> int:
        if not ordered:
            return 0
        return ordered[min(len(ordered) - 1, (len(ordered) - 1) * q // 100)]

    low, medium, high, very_high = (at(q) for q in PERCENTILES)
    medium = max(medium, MIN_MEDIUM)
    busy = sum(1 for fee in ordered if fee > 0) / len(ordered) if ordered else 0.0
    return FeeLevels(
        slot=0,
        congestion=round(busy, 3),
        low=low,
        medium=medium,
        high=max(high, medium),
        very_high=max(very_high, high, medium),
    )
