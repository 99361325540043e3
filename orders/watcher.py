"""The market watcher: the one place that looks at prices for waiting orders.

Limit and sniper orders wait in their workflows on a durable timer and a signal; none
of them polls. Once per tick the watcher reads the waiting orders (an index read) and
the pools, and signals only the workflows whose condition holds.

Its work per tick is bounded, whatever the waiting orders are:
- Orders of one pair, direction, allowed venues and hops share their prices, priced as
  their workflow's planner would route them (through other tokens when their hops allow
  and that pays more), and a price bound (the best marginal price, net of fees): an order
  whose limit is above it cannot fill at any size, and costs nothing.
- The rest are grouped in amount buckets (a factor of 2^¼ wide). One route per bucket
  and edge: at the bucket's largest amount the price per unit is the bucket's worst, at
  its smallest the best. An order whose limit the worst price meets is signalled; one
  whose limit the best price misses is not; only the few in between need a route of
  their own. Each pool's outputs are computed once per tick and amount, and shared.
- That work runs in a thread, off the worker's event loop (heartbeats go on), and stops
  at a time budget. Every order that needs a route (its bucket's edges, its own, a
  trailing stop's) takes its turn: owners in turn, each owner's kinds in turn, the
  orders a tick left over first on the next. No owner's orders take the tick, and a
  protective order never waits behind another owner's limits.

A signal is a hint, not a decision: the workflow routes again before it executes and
goes back to waiting when the price slipped (it never fills below its limit).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.orders import Trigger, TriggerReason
from core.domain import OrderType
from core.formatting import to_base_units
from core.order_kinds import Direction, WaitKind, kind_of
from market.clock import MarketClock
from market.pools import Pool
from market.router import Output, best_route
from market.routing import NoRoute, plan_route
from market.sources import MarketPools
from market.tokens import find_token
from orders import repository
from orders.repository import WaitingOrder
from orders.triggers import fires, trailing_trigger

TICK_S = 0.5
RESIGNAL_AFTER_S = 5.0  # a signal not delivered, or a strategy's leg (a paused bracket ignores it)
# An order whose workflow took its trigger shows the same wait (last_seq) until admission
# lets it route, which under load takes minutes: signalled again only this rarely.
QUEUED_RESIGNAL_AFTER_S = 60.0
TICK_BUDGET_S = 0.1  # of route computing per tick
BUCKETS_PER_DOUBLING = 4
# Price per unit falls as the amount grows, up to base-unit rounding and the router's 5 %
# split steps: a bucket's edges decide for its orders only with this margin to spare.
MARGIN = Decimal("0.005")

# (order id, trigger, its parent strategy's id): a strategy's leg is the strategy's call.
# True once the server took the signal (it is durable from then on).
Signal = Callable[[str, Trigger, str | None], Awaitable[bool]]


@dataclass
class Evaluation:
    """One tick's decisions and what they cost."""

    triggers: list[tuple[str, Trigger]] = field(default_factory=list)
    # Trailing stops whose best price rose: {order_id: (peak, trigger)}.
    peaks: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    routes: int = 0  # routes computed
    deferred: list[str] = field(default_factory=list)  # undecided, for the next tick (budget spent)


@dataclass(frozen=True)
class Sent:
    at: float
    last_seq: int  # the wait it was sent in
    delivered: bool


class SignalLog:
    """Which waiting orders have been signalled, so that none is signalled every tick.

    A delivered trigger is durable: the workflow takes it and waits for admission, its
    row still WAITING with the same last event. It is signalled again only once it waits
    anew (another last_seq), or after QUEUED_RESIGNAL_AFTER_S. A signal that failed, or
    one to a strategy's leg (the strategy may have ignored it), after RESIGNAL_AFTER_S."""

    def __init__(self) -> None:
        self._sent: dict[str, Sent] = {}

    def due(self, order: WaitingOrder, at: float) -> bool:
        sent = self._sent.get(order.order_id)
        if sent is None or sent.last_seq != order.last_seq:
            return True
        if sent.delivered and order.parent_id is None:
            return at - sent.at >= QUEUED_RESIGNAL_AFTER_S
        return at - sent.at >= RESIGNAL_AFTER_S

    def sent(self, order: WaitingOrder, at: float, delivered: bool) -> None:
        self._sent[order.order_id] = Sent(at, order.last_seq, delivered)

    def keep(self, waiting: list[WaitingOrder]) -> None:
        """Forget the orders that no longer wait."""
        live = {order.order_id for order in waiting}
        self._sent = {order_id: sent for order_id, sent in self._sent.items() if order_id in live}


class MarketWatcher:
    def __init__(
        self,
        pools: MarketPools,
        market_clock: MarketClock,
        sessions: async_sessionmaker[AsyncSession],
        signal: Signal,
        clock: Callable[[], float] = time.monotonic,
        budget_s: float = TICK_BUDGET_S,
    ) -> None:
        self._pools, self._market_clock, self._sessions = pools, market_clock, sessions
        self._signal, self._clock, self._budget_s = signal, clock, budget_s
        self._signals = SignalLog()
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
        at = self._clock()
        due = [o for o in waiting if self._signals.due(o, at)]
        evaluation = await asyncio.to_thread(
            evaluate, due, pools, now, budget_s=self._budget_s, first=self._deferred
        )
        self.last, self._deferred = evaluation, evaluation.deferred
        if evaluation.peaks:
            async with self._sessions() as session:
                await repository.raise_peaks(session, evaluation.peaks)
        by_id = {o.order_id: o for o in waiting}
        for order_id, trigger in evaluation.triggers:
            order = by_id[order_id]
            delivered = await self._signal(order_id, trigger, order.parent_id)
            self._signals.sent(order, self._clock(), delivered)
        self._signals.keep(waiting)
        return len(evaluation.triggers)


def evaluate(
    waiting: list[WaitingOrder],
    pools: list[Pool],
    now: float,
    *,
    budget_s: float = TICK_BUDGET_S,
    max_routes: int | None = None,
    first: Sequence[str] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> Evaluation:
    """Which waiting orders' conditions hold on these pools (and trailing stops' new
    peaks). Pure: no I/O.

    What the price bounds settle costs nothing. Every other order needs a route (its
    bucket's edges, then maybe its own) and takes its turn: owners in turn, and each
    owner's kinds in turn, last tick's leftovers first, until the budget is spent."""
    evaluation = Evaluation()
    deadline = clock() + budget_s
    groups: dict[RouteKey, list[WaitingOrder]] = defaultdict(list)
    for order in waiting:
        groups[route_key(order)].append(order)
    turns: list[Turn] = []
    for key, orders in groups.items():
        token_in, token_out, dexes, _ = key
        allowed = [p for p in pools if dexes is None or p.dex in dexes]
        direct = [p for p in allowed if {p.base, p.quote} == {token_in, token_out} and p.opens_at <= now]
        snipers = [order for order in orders if kind_of(order.type).waits is WaitKind.POOL_OPEN]
        # A sniper waits for a pool of its pair, on a venue it may take, to open.
        token = find_token(token_out) if snipers and direct else None
        if token is not None:
            evaluation.triggers += [
                (order.order_id, Trigger(TriggerReason.POOL_OPEN, token.decimals)) for order in snipers
            ]
        priced = [order for order in orders if kind_of(order.type).waits is not WaitKind.POOL_OPEN]
        prices = _prices(allowed, direct, key, now, evaluation) if priced else None
        if prices is None:
            continue
        for order in priced:
            settled = _settled_by_bound(order, prices)
            if settled is None:
                turns.append((order, prices))
            elif settled:
                evaluation.triggers.append((order.order_id, _trigger(order)))
    ordered = take_turns(turns, first)
    for n, (order, prices) in enumerate(ordered):
        if n > 0 and _spent(evaluation, deadline, clock, max_routes):  # one turn at least: progress
            evaluation.deferred = [o.order_id for o, _ in ordered[n:]]
            break
        if _decide(order, prices, evaluation):
            evaluation.triggers.append((order.order_id, _trigger(order)))
    return evaluation


# At most what one turn computes (its bucket's two edges and its own amount, each maybe
# the direct route and a plan): a turn started is finished, so a tick computes at most
# max_routes + TURN_ROUTES.
TURN_ROUTES = 6
# The route constraints orders share prices by: pair, direction, venues allowed, hops.
RouteKey = tuple[str, str, tuple[str, ...] | None, int]
Turn = tuple[WaitingOrder, "PairPrices | RoutedPrices"]


def route_key(order: WaitingOrder) -> RouteKey:
    dexes = tuple(sorted(order.dexes)) if order.dexes is not None else None
    return (order.token_in, order.token_out, dexes, order.max_hops)


def take_turns(turns: list[Turn], first: Sequence[str]) -> list[Turn]:
    """Round-robin across owners (owners with leftovers from the last tick first) and,
    within each owner, across kinds, its leftovers first in the order they were left:
    one owner's many orders cannot push another's out of the tick, and whatever a tick
    leaves is taken first next."""
    left = {order_id: n for n, order_id in enumerate(first)}
    by_owner: dict[str, list[Turn]] = defaultdict(list)
    for turn in turns:
        by_owner[turn[0].owner].append(turn)
    queues = [
        _kinds_in_turn(sorted((t for t in owned if t[0].order_id in left), key=lambda t: left[t[0].order_id]))
        + _kinds_in_turn([t for t in owned if t[0].order_id not in left])
        for owned in by_owner.values()
    ]
    queues.sort(key=lambda queue: left.get(queue[0][0].order_id, len(left)))
    return [turn for round_ in itertools.zip_longest(*queues) for turn in round_ if turn is not None]


def _kinds_in_turn(turns: list[Turn]) -> list[Turn]:
    by_kind: dict[OrderType, list[Turn]] = defaultdict(list)
    for turn in turns:
        by_kind[turn[0].type].append(turn)
    kinds = sorted(by_kind, key=_turn_rank)
    return [
        turn
        for round_ in itertools.zip_longest(*(by_kind[k] for k in kinds))
        for turn in round_
        if turn is not None
    ]


def _turn_rank(order_type: OrderType) -> tuple[bool, bool, bool]:
    """Within an owner's turns: protective orders first (trailing stops, then stops),
    then the other triggered ones, then limits."""
    kind = kind_of(order_type)
    return (not kind.protects, not kind.at_market, not kind.trails)


def _prices(
    allowed: list[Pool], direct: list[Pool], key: RouteKey, now: float, evaluation: Evaluation
) -> PairPrices | RoutedPrices | None:
    """The prices of the routes these orders may take, as their workflow plans them: on
    the venues they allow, through other tokens when their hops allow and that pays more."""
    token_in, token_out, _, max_hops = key
    pair = PairPrices(direct, token_in, token_out, now, evaluation) if direct else None
    open_pools = [p for p in allowed if p.opens_at <= now]
    through = (
        _path_bound(open_pools, token_in, token_out, now, max_hops, min_hops=2) if max_hops > 1 else None
    )
    if through is None:
        return pair
    return RoutedPrices(open_pools, token_in, token_out, now, evaluation, max_hops, pair, through)


def _trigger(order: WaitingOrder) -> Trigger:
    if kind_of(order.type).at_market:
        return Trigger(TriggerReason.PRICE_TRIGGERED)
    return Trigger(TriggerReason.LIMIT_REACHED)


def _settled_by_bound(order: WaitingOrder, prices: PairPrices | RoutedPrices) -> bool | None:
    """What the pair's price bound alone decides (no route): no trade pays more than the
    first unit. None: it needs a route."""
    if prices.units(order.amount) is None:
        return False
    kind = kind_of(order.type)
    if kind.trails:
        return None if order.trailing_bps is not None else False  # its peak follows the price
    if kind.at_market:
        trigger = order.trigger_price
        if trigger is None:
            return False
        if kind.fires is Direction.RISES and trigger > prices.bound:
            return False  # not even the first unit pays it
        if kind.fires is Direction.FALLS and prices.bound <= trigger:
            return True  # every amount's price is at or below the first unit's
        return None
    if order.limit_price is None or order.limit_price > prices.bound:
        return False  # not even the first unit pays the limit: no route can
    return None


def _decide(order: WaitingOrder, prices: PairPrices | RoutedPrices, evaluation: Evaluation) -> bool:
    """Whether the order fires, from its bucket's edges or else its own route (a trailing
    stop: its own route, and its peak raised when the price rose)."""
    units = prices.units(order.amount)
    assert units is not None
    kind = kind_of(order.type)
    if kind.trails:
        assert order.trailing_bps is not None
        price = prices.price(units)
        peak = max(order.peak_price or price, price)
        # The stored trigger may sit above the trail (a floor, as a bracket's stop
        # sets): it only ever rises.
        trigger = max(trailing_trigger(peak, order.trailing_bps), order.trigger_price or Decimal(0))
        if order.peak_price is None or peak > order.peak_price:
            evaluation.peaks[order.order_id] = (peak, trigger)
        return fires(order.type, price, trigger)
    if kind.at_market:
        assert order.trigger_price is not None
        triggered = _triggered(order, prices, units)
        if triggered is None:
            return fires(order.type, prices.price(units), order.trigger_price)
        return triggered
    assert order.limit_price is not None
    lo, hi = bucket_edges(units)
    if prices.price(hi) * (1 - MARGIN) >= order.limit_price:
        return True
    if prices.price(lo) * (1 + MARGIN) >= order.limit_price:
        return prices.price(units) >= order.limit_price  # between the bucket's edges: its own route
    return False


def _triggered(order: WaitingOrder, prices: PairPrices | RoutedPrices, units: int) -> bool | None:
    """A stop or take-profit from its amount bucket's edges (price falls as the amount
    grows): True or False when both edges agree with margin, None when it needs its own
    route."""
    trigger = order.trigger_price
    assert trigger is not None
    lo, hi = bucket_edges(units)
    best, worst = prices.price(lo), prices.price(hi)
    if kind_of(order.type).fires is Direction.RISES:
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
    """Prices of a pair through other tokens too (up to `max_hops`), as the orders'
    planner routes them. The bound: the best path's product of each hop's best marginal
    price, net of fees. While the direct route pays at least what any longer path could
    (`through`, their bound), it is the plan, and no planning is needed."""

    def __init__(
        self,
        pools: list[Pool],
        token_in: str,
        token_out: str,
        now: float,
        evaluation: Evaluation,
        max_hops: int,
        direct: PairPrices | None,
        through: Decimal,
    ) -> None:
        self._pools, self._token_in, self._token_out, self._now = pools, token_in, token_out, now
        self._evaluation, self._max_hops, self._direct, self._through = evaluation, max_hops, direct, through
        self.bound = max(through, direct.bound) if direct is not None else through
        self._decimals_in, self._decimals_out = _decimals(token_in), _decimals(token_out)
        self._prices: dict[int, Decimal] = {}

    def units(self, amount: Decimal) -> int | None:
        return to_base_units(amount, self._decimals_in) if self._decimals_in is not None else None

    def price(self, units: int) -> Decimal:
        if units not in self._prices:
            if self._direct is not None and self._direct.price(units) >= self._through:
                self._prices[units] = self._direct.price(units)
                return self._prices[units]
            self._evaluation.routes += 1
            try:
                out = plan_route(
                    self._pools,
                    self._token_in,
                    self._token_out,
                    units,
                    max_hops=self._max_hops,
                    now=self._now,
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
    pools: list[Pool], token_in: str, token_out: str, now: float, max_hops: int = 3, min_hops: int = 1
) -> Decimal | None:
    """The best product of marginal prices along any path of `min_hops` to `max_hops` pairs."""
    by_pair: dict[frozenset[str], list[Pool]] = defaultdict(list)
    for pool in pools:
        by_pair[frozenset((pool.base, pool.quote))].append(pool)
    best: Decimal | None = None

    def walk(token: str, seen: list[str], price: Decimal) -> None:
        nonlocal best
        if token == token_out:
            if len(seen) - 1 >= min_hops:
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
