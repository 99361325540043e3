"""Other traders: a seeded stream of swaps that moves every pool, so prices drift,
Meteora's volatility rises and falls, and slippage comes from the market moving between
quote and landing rather than from a coin flip."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from decimal import Decimal

from market.clock import MarketClock
from market.cpmm import CpmmPool
from market.pool_store import PoolStore
from market.pools import ConstantProductPool, Pool, genesis_pools
from market.tokens import decimals_of

# Pull towards the genesis price, so a long run wanders but does not drift away.
MEAN_REVERSION = 40.0
# Median trade: this fraction of the pool's quote-side liquidity near the price.
TYPICAL_TRADE = 0.0005


class BackgroundTrader:
    def __init__(
        self, pools: PoolStore | None, clock: MarketClock, trades_per_s: float, seed: int | None = None
    ) -> None:
        """`pools` None: a real cluster, where other traders are real; this one idles."""
        self._pools, self._clock = pools, clock
        self._rate = trades_per_s if pools is not None else 0.0
        self._rng = random.Random(seed)
        self._targets = {pool.pool_id: pool.mid_price() for pool in genesis_pools()}

    async def run(
        self,
        duration_s: float,
        heartbeat: Callable[[int], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> int:
        """Trade at the configured rate for `duration_s` (or until `stopping()`); returns
        the number of trades. `heartbeat` is called at least once a second."""
        trades = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration_s
        next_trade = loop.time() + self._pause()
        while (now := loop.time()) < deadline and not stopping():
            if now >= next_trade:
                trades += await self._trade_once()
                next_trade = now + self._pause()
            if heartbeat is not None:
                heartbeat(trades)
            await asyncio.sleep(max(0.0, min(next_trade, deadline, now + 1.0) - now))
        return trades

    def _pause(self) -> float:
        return self._rng.expovariate(self._rate) if self._rate > 0 else math.inf

    async def _trade_once(self) -> int:
        if self._pools is None:
            return 0
        pool_ids = await self._pools.ids()
        if not pool_ids:
            return 0
        result = await self._pools.trade(self._rng.choice(pool_ids), self.next_trade, self._clock.now())
        return 1 if result.amount_in > 0 else 0

    def next_trade(self, pool: Pool) -> tuple[str, int]:
        """A random trade, more likely to push the price back towards its target."""
        target = self._targets.get(pool.pool_id)
        price = pool.mid_price()
        deviation = float((price - target) / target) if target else 0.0
        sell_base = self._rng.random() < 1 / (1 + math.exp(-MEAN_REVERSION * deviation))
        size = TYPICAL_TRADE * math.exp(self._rng.gauss(0, 1))
        quote_liquidity = _quote_liquidity(pool)
        if sell_base:
            base_amount = Decimal(quote_liquidity * size) / price if price > 0 else Decimal(0)
            return pool.base, int(base_amount.scaleb(_decimals_delta(pool)))
        return pool.quote, int(quote_liquidity * size)


def _quote_liquidity(pool: Pool) -> int:
    """Quote-token base units that trade near the price: the reserve, or the bins' total."""
    if isinstance(pool, ConstantProductPool | CpmmPool):
        return pool.reserve_quote
    return sum(y for _, y in pool.book.bins.values())


def _decimals_delta(pool: Pool) -> int:
    return decimals_of(pool.base) - decimals_of(pool.quote)
