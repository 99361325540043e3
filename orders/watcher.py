"""The market watcher: the one place that looks at prices for waiting orders.

Limit and sniper orders wait in their workflows on a durable timer and a signal; none
of them polls. Once per tick the watcher reads the waiting orders (an index read) and
the pools, and signals only the workflows whose condition holds.

Its work per tick is bounded, whatever the waiting orders are:
- Orders of one pair and direction share a price bound (the best marginal price, net of
  fees): an order whose limit is above it cannot fill at any size, and costs nothing.
- The rest are grouped in amount buckets (a factor of 2^¼ wide). One route per bucket
  and edge: at the bucket's largest amount the price per unit is the bucket's worst, at
  its smallest the best. An order whose limit the worst price meets is signalled; one
  whose limit the best price misses is not; only the few in between need a route of
  their own. Each pool's outputs are computed once per tick and amount, and shared.
- That work runs in a thread, off the worker's event loop (heartbeats go on). The
  buckets' routes are few (two per bucket in use); the undecided orders' own routes
  stop at a time budget, and those left over are taken first on the next tick.

A signal is a hint, not a decision: the workflow routes again before it executes and
goes back to waiting when the price slipped (it never fills below its limit).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.orders import Trigger, TriggerReason
from core.domain import TRIGGERED_TYPES, OrderType
from core.formatting import to_base_units
from market.clock import MarketClock
from market.pools import Pool
from market.router import Output, best_route
from market.routing import NoRoute, plan_route
from market.storage import PoolStore
from market.tokens import find_token
from orders import repository
from orders.repository import WaitingOrder
from orders.triggers import fires, trailing_trigger

TICK_S = 0.5
RESIGNAL_AFTER_S = 5.0  # a workflow that got the signal and still waits gets it again
TICK_BUDGET_S = 0.1  # of route computing per tick
BUCKETS_PER_DOUBLING = 4
# Price per unit falls as the amount grows, up to base-unit rounding and the router's 5 %
# split steps: a bucket's edges decide for its orders only with this margin to spare.
MARGIN = Decimal("0.005")

# (order id, trigger, its parent strategy's id): a strategy's leg is the strategy's call.
Signal = Callable[[str, Trigger, str | None], Awaitable[None]]


@dataclass
class Evaluation:
    """One tick's decisions and what they cost."""

    triggers: list[tuple[str, Trigger]] = field(default_factory=list)
    # Trailing stops whose best price rose: {order_id: (peak, trigger)}.
    peaks: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    routes: int = 0  # routes computed
    deferred: list[str] = field(default_factory=list)  # undecided, for the next tick (budget spent)


class MarketWatcher:
    def __init__(
        self,
        pools: PoolStore,
        market_clock: MarketClock,
        sessions: async_sessionmaker[AsyncSession],
        signal: Signal,
        clock: Callable[[], float] = time.monotonic,
        budget_s: float = TICK_BUDGET_S,
    ) -> None:
        self._pools, self._market_clock, self._sessions = pools, market_clock, sessions
        self._signal, self._clock, self._budget_s = signal, clock, budget_s
        self._signalled: dict[str, float] = {}
        self._deferred: list[str] = []
        self.last: Evaluation = Evaluation()

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
        now = self._market_clock.now()
        recent = {
            order_id for order_id, at in self._signalled.items() if self._clock() - at < RESIGNAL_AFTER_S
        }
        due = [o for o in waiting if o.order_id not in recent]
        evaluation = await asyncio.to_thread(
            evaluate, due, pools, now, budget_s=self._budget_s, first=set(self._deferred)
        )
        self.last, self._deferred = evaluation, evaluation.deferred
        if evaluation.peaks:
            async with self._sessions() as session:
                await repository.raise_peaks(session, evaluation.peaks)
        parents = {o.order_id: o.parent_id for o in waiting}
        for order_id, trigger in evaluation.triggers:
            await self._signal(order_id, trigger, parents.get(order_id))
            self._signalled[order_id] = self._clock()
        live = {o.order_id for o in waiting}
        self._signalled = {k: v for k, v in self._signalled.items() if k in live}
        return len(evaluation.triggers)


def evaluate(
    waiting: list[WaitingOrder],
    pools: list[Pool],
    now: float,
    *,
    budget_s: float = TICK_BUDGET_S,
    max_routes: int | None = None,
    first: set[str] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Evaluation:
    """Which waiting orders' conditions hold on these pools (and trailing stops' new
    peaks). Pure: no I/O."""
    evaluation = Evaluation()
    deadline = clock() + budget_s
    groups: dict[tuple[str, str], list[WaitingOrder]] = defaultdict(list)
    for order in waiting:
        groups[(order.token_in, order.token_out)].append(order)
    undecided: list[tuple[WaitingOrder, PairPrices | RoutedPrices]] = []
    trailing: list[tuple[WaitingOrder, PairPrices | RoutedPrices]] = []
    for (token_in, token_out), orders in groups.items():
        open_pools = [p for p in pools if {p.base, p.quote} == {token_in, token_out} and p.opens_at <= now]
        prices: PairPrices | RoutedPrices
        if open_pools:
            prices = PairPrices(open_pools, token_in, token_out, now, evaluation)
        elif any(order.type is not OrderType.SNIPER for order in orders):
            # No direct pool: priced through other tokens, with the orders' own router.
            routed = RoutedPrices.of(pools, token_in, token_out, now, evaluation)
            if routed is None:
                continue
            prices = routed
        else:
            continue
        for order in orders:
            if order.type is OrderType.SNIPER:
                token = find_token(order.token_out)
                if token is not None:
                    evaluation.triggers.append(
                        (order.order_id, Trigger(TriggerReason.POOL_OPEN, token.decimals))
                    )
                continue
            if order.type in TRIGGERED_TYPES:
                if order.type is OrderType.TRAILING_STOP:
                    trailing.append((order, prices))  # its peak moves: priced on its own, below
                    continue
                triggered = _triggered(order, prices)
                if triggered is None:
                    undecided.append((order, prices))
                elif triggered:
                    evaluation.triggers.append((order.order_id, Trigger(TriggerReason.PRICE_TRIGGERED)))
                continue
            if order.limit_price is None or order.limit_price > prices.bound:
                continue  # not even the first unit pays the limit: no route can
            units = prices.units(order.amount)
            if units is None:
                continue
            lo, hi = bucket_edges(units)
            if prices.price(hi) * (1 - MARGIN) >= order.limit_price:
                evaluation.triggers.append((order.order_id, Trigger(TriggerReason.LIMIT_REACHED)))
            elif prices.price(lo) * (1 + MARGIN) >= order.limit_price:
                undecided.append((order, prices))  # between the bucket's edges: its own route
    first = first or set()
    undecided.sort(key=lambda item: item[0].order_id not in first)  # last tick's leftovers first
    for n, (order, prices) in enumerate(undecided):
        if _spent(evaluation, deadline, clock, max_routes):
            evaluation.deferred = [o.order_id for o, _ in undecided[n:]]
            break
        units = prices.units(order.amount)
        assert units is not None
        if order.type in TRIGGERED_TYPES:
            assert order.trigger_price is not None
            if fires(order.type, prices.price(units), order.trigger_price):
                evaluation.triggers.append((order.order_id, Trigger(TriggerReason.PRICE_TRIGGERED)))
            continue
        assert order.limit_price is not None
        if prices.price(units) >= order.limit_price:
            evaluation.triggers.append((order.order_id, Trigger(TriggerReason.LIMIT_REACHED)))
    # Trailing stops follow the price (their own route, shared by equal amounts).
    for n, (order, prices) in enumerate(trailing):
        if _spent(evaluation, deadline, clock, max_routes):
            evaluation.deferred += [o.order_id for o, _ in trailing[n:]]
            break
        units = prices.units(order.amount)
        if units is None or order.trailing_bps is None:
            continue
        price = prices.price(units)
        peak = max(order.peak_price or price, price)
        # The stored trigger may sit above the trail (a floor, as a bracket's stop
        # sets): it only ever rises.
        trigger = max(trailing_trigger(peak, order.trailing_bps), order.trigger_price or Decimal(0))
        if order.peak_price is None or peak > order.peak_price:
            evaluation.peaks[order.order_id] = (peak, trigger)
        if fires(OrderType.TRAILING_STOP, price, trigger):
            evaluation.triggers.append((order.order_id, Trigger(TriggerReason.PRICE_TRIGGERED)))
    return evaluation


def _triggered(order: WaitingOrder, prices: PairPrices | RoutedPrices) -> bool | None:
    """A stop or take-profit from its amount bucket's edges (price falls as the amount
    grows): True or False when both edges agree with margin, None when it needs its own
    route. The quick bound settles most: no trade pays more than the first unit."""
    trigger = order.trigger_price
    units = prices.units(order.amount)
    if trigger is None or units is None:
        return False
    if order.type is OrderType.TAKE_PROFIT and trigger > prices.bound:
        return False  # not even the first unit pays it
    if order.type is OrderType.STOP_LOSS and prices.bound <= trigger:
        return True  # every amount's price is at or below the first unit's
    lo, hi = bucket_edges(units)
    best, worst = prices.price(lo), prices.price(hi)
    if order.type is OrderType.TAKE_PROFIT:
        if worst * (1 - MARGIN) >= trigger:
            return True
        return None if best * (1 + MARGIN) >= trigger else False
    if best * (1 + MARGIN) <= trigger:
        return True
    return None if worst * (1 - MARGIN) <= trigger else False


class PairPrices:
    """Prices of one pair and direction on its open pools, for this tick: each pool's
    output at an amount is computed once and shared by every route that asks."""

    def __init__(
        self, pools: list[Pool], token_in: str, token_out: str, now: float, evaluation: Evaluation
    ) -> None:
        self._token_in, self._evaluation = token_in, evaluation
        self._decimals_in = _decimals(token_in)
        self._decimals_out = _decimals(token_out)
        self._prices: dict[int, Decimal] = {}
        self.bound = best_marginal_price(pools, token_in, now)
        self._outputs: dict[str, Output] = {
            pool.dex: _memoized(lambda amount, pool=pool: pool.quote_swap(token_in, amount, now).amount_out)  # type: ignore[misc]
            for pool in pools
        }

    def units(self, amount: Decimal) -> int | None:
        return to_base_units(amount, self._decimals_in) if self._decimals_in is not None else None

    def price(self, units: int) -> Decimal:
        """token_out per token_in (human units) of the best route for `units` in."""
        if units not in self._prices:
            self._evaluation.routes += 1
            out = best_route(self._outputs, units).amount_out
            self._prices[units] = (
                Decimal(out).scaleb(-(self._decimals_out or 0))
                / Decimal(units).scaleb(-(self._decimals_in or 0))
                if units > 0
                else Decimal(0)
            )
        return self._prices[units]


class RoutedPrices:
    """Prices of a pair without a direct pool, through other tokens (up to 3 hops), as
    the orders' router would route them. The bound: the best path's product of each
    hop's best marginal price, net of fees."""

    def __init__(
        self,
        pools: list[Pool],
        token_in: str,
        token_out: str,
        now: float,
        evaluation: Evaluation,
        bound: Decimal,
    ) -> None:
        self._pools, self._token_in, self._token_out, self._now = pools, token_in, token_out, now
        self._evaluation, self.bound = evaluation, bound
        self._decimals_in, self._decimals_out = _decimals(token_in), _decimals(token_out)
        self._prices: dict[int, Decimal] = {}

    @classmethod
    def of(
        cls, pools: list[Pool], token_in: str, token_out: str, now: float, evaluation: Evaluation
    ) -> RoutedPrices | None:
        open_pools = [p for p in pools if p.opens_at <= now]
        bound = _path_bound(open_pools, token_in, token_out, now)
        return None if bound is None else cls(open_pools, token_in, token_out, now, evaluation, bound)

    def units(self, amount: Decimal) -> int | None:
        return to_base_units(amount, self._decimals_in) if self._decimals_in is not None else None

    def price(self, units: int) -> Decimal:
        if units not in self._prices:
            self._evaluation.routes += 1
            try:
                out = plan_route(
                    self._pools, self._token_in, self._token_out, units, now=self._now
                ).amount_out
            except NoRoute:
                out = 0
            self._prices[units] = (
                Decimal(out).scaleb(-(self._decimals_out or 0))
                / Decimal(units).scaleb(-(self._decimals_in or 0))
                if units > 0
                else Decimal(0)
            )
        return self._prices[units]


def _path_bound(
    pools: list[Pool], token_in: str, token_out: str, now: float, max_hops: int = 3
) -> Decimal | None:
    """The best product of marginal prices along any path of at most `max_hops` pairs."""
    by_pair: dict[frozenset[str], list[Pool]] = defaultdict(list)
    for pool in pools:
        by_pair[frozenset((pool.base, pool.quote))].append(pool)
    best: Decimal | None = None

    def walk(token: str, seen: list[str], price: Decimal) -> None:
        nonlocal best
        if token == token_out:
            best = price if best is None else max(best, price)
            return
        if len(seen) > max_hops:
            return
        for pair, of_pair in by_pair.items():
            if token in pair:
                (other,) = pair - {token}
                if other not in seen:
                    walk(other, [*seen, other], price * best_marginal_price(of_pair, token, now))

    walk(token_in, [token_in], Decimal(1))
    return best


def bucket_edges(units: int) -> tuple[int, int]:
    """The amount bucket `units` falls in: [lo, hi], a factor of 2^(1/4) wide."""
    if units <= 1:
        return units, units
    k = math.floor(math.log2(units) * BUCKETS_PER_DOUBLING)
    lo = max(1, math.floor(2 ** (k / BUCKETS_PER_DOUBLING)))
    hi = math.ceil(2 ** ((k + 1) / BUCKETS_PER_DOUBLING))
    return min(lo, units), max(hi, units)


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


def _memoized(output: Output) -> Output:
    cache: dict[int, int] = {}

    def cached(amount: int) -> int:
        if amount not in cache:
            cache[amount] = output(amount)
        return cache[amount]

    return cached


def _decimals(symbol: str) -> int | None:
    token = find_token(symbol)
    return token.decimals if token is not None else None


def _spent(
    evaluation: Evaluation, deadline: float, clock: Callable[[], float], max_routes: int | None
) -> bool:
    return clock() > deadline or (max_routes is not None and evaluation.routes >= max_routes)
