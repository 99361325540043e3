"""The market watcher: the one place that looks at prices for waiting orders.

Limit and sniper orders wait in their workflows on a durable timer and a signal; none
of them polls. The watcher reads the waiting orders and the pools once per tick and
signals only the workflows whose condition holds, so 10 000 waiting orders cost one
query and one pass over the pools per tick, not 10 000 quotes. Orders far from their
limit are skipped by a price bound before any route is computed.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.orders import Trigger, TriggerReason
from core.domain import OrderType
from core.formatting import to_base_units
from market.clock import MarketClock
from market.pools import Pool
from market.router import best_route, pool_outputs
from market.storage import PoolStore
from market.tokens import find_token
from orders import repository
from orders.repository import WaitingOrder

TICK_S = 0.5
RESIGNAL_AFTER_S = 5.0  # a workflow that got the signal and still waits gets it again

Signal = Callable[[str, Trigger], Awaitable[None]]


class MarketWatcher:
    def __init__(
        self,
        pools: PoolStore,
        market_clock: MarketClock,
        sessions: async_sessionmaker[AsyncSession],
        signal: Signal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pools, self._market_clock, self._sessions = pools, market_clock, sessions
        self._signal, self._clock = signal, clock
        self._signalled: dict[str, float] = {}

    async def run(
        self, duration_s: float, heartbeat: Callable[[int], None], stopping: Callable[[], bool]
    ) -> int:
        """Tick for `duration_s` (or until `stopping()`); returns the signals sent."""
        sent = 0
        deadline = self._clock() + duration_s
        while self._clock() < deadline and not stopping():
            sent += await self.tick()
            heartbeat(sent)
            await asyncio.sleep(TICK_S)
        return sent

    async def tick(self) -> int:
        async with self._sessions() as session:
            waiting = await repository.waiting(session)
        if not waiting:
            return 0
        pools = await self._pools.all()
        now, sent = self._market_clock.now(), 0
        # Orders of one pair and direction share their pools and their price bound.
        groups: dict[tuple[str, str], list[WaitingOrder]] = defaultdict(list)
        for order in waiting:
            groups[(order.token_in, order.token_out)].append(order)
        for (token_in, token_out), orders in groups.items():
            open_pools = [
                p for p in pools if {p.base, p.quote} == {token_in, token_out} and p.opens_at <= now
            ]
            if not open_pools:
                continue
            bound = best_marginal_price(open_pools, token_in, now)
            for order in orders:
                if order.limit_price is not None and order.limit_price > bound:
                    continue  # not even the first unit pays the limit: no route can
                if self._clock() - self._signalled.get(order.order_id, -RESIGNAL_AFTER_S) < RESIGNAL_AFTER_S:
                    continue
                trigger = condition_met(order, open_pools, now)
                if trigger is not None:
                    await self._signal(order.order_id, trigger)
                    self._signalled[order.order_id] = self._clock()
                    sent += 1
        live = {o.order_id for o in waiting}
        self._signalled = {k: v for k, v in self._signalled.items() if k in live}
        return sent


def condition_met(order: WaitingOrder, open_pools: list[Pool], now: float) -> Trigger | None:
    """The trigger for `order` if its condition holds on these (open) pools of its pair."""
    if not open_pools:
        return None
    if order.type is OrderType.SNIPER:
        token = find_token(order.token_out)
        return Trigger(TriggerReason.POOL_OPEN, token.decimals) if token else None
    token_in, token_out = find_token(order.token_in), find_token(order.token_out)
    if order.limit_price is None or token_in is None or token_out is None:
        return None
    if best_marginal_price(open_pools, order.token_in, now) < order.limit_price:
        return None  # not even the first unit pays the limit: no route can
    amount_in = to_base_units(order.amount, token_in.decimals)
    route = best_route(pool_outputs(open_pools, order.token_in, now), amount_in)
    price = Decimal(route.amount_out).scaleb(-token_out.decimals) / order.amount
    return Trigger(TriggerReason.LIMIT_REACHED) if price >= order.limit_price else None


def best_marginal_price(pools: list[Pool], token_in: str, now: float) -> Decimal:
    """token_out per token_in for an infinitesimal trade, net of fees: an upper bound on
    what any trade of any size pays."""
    best = Decimal(0)
    for pool in pools:
        mid = pool.mid_price()
        if mid <= 0:
            continue
        price = mid if token_in == pool.base else 1 / mid
        best = max(best, price * (1 - pool.marginal_fee_bps(now) / 10_000))
    return best
