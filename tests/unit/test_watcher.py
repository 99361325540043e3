"""The market watcher's decisions and their cost: bounded per tick whatever the waiting
orders are, and the same decisions as routing every order on its own."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.orders import Trigger, TriggerReason
from core.domain import OrderType
from core.ids import new_order_id
from market.pools import Pool, genesis_pools
from market.router import best_route, pool_outputs
from market.routing import plan_route
from orders import repository
from orders.repository import WaitingOrder
from orders.watcher import TICK_S, TURN_ROUTES, MarketWatcher, best_marginal_price, evaluate

NOW = 1_000.0
SOL_USDC = [p for p in genesis_pools() if p.pair == "SOL/USDC"]
BOUND = best_marginal_price(SOL_USDC, "SOL", NOW)  # ≈ 149.85 USDC per SOL


def limit(amount: str, price: Decimal, token_in: str = "SOL", token_out: str = "USDC") -> WaitingOrder:
    return WaitingOrder(new_order_id(), OrderType.LIMIT, token_in, token_out, Decimal(amount), price)


def route_price(pools: list[Pool], amount: Decimal) -> Decimal:
    units = int(amount * 10**9)
    out = best_route(pool_outputs(pools, "SOL", NOW), units).amount_out
    return Decimal(out).scaleb(-6) / amount


def test_hundreds_of_orders_that_can_never_fill_cost_a_few_routes() -> None:
    # Limits just under the first unit's price pass the quick bound, but 5 000 SOL can
    # never fetch them: each of these orders once cost a full route every tick.
    never = [limit("5000", BOUND - Decimal("0.01")) for _ in range(300)]
    fillable = limit("1", Decimal("140"))
    evaluation = evaluate([*never, fillable], SOL_USDC, NOW, budget_s=60)
    assert [order_id for order_id, _ in evaluation.triggers] == [fillable.order_id]
    assert evaluation.routes <= 4  # two edges of each amount bucket in use
    assert evaluation.deferred == []


def test_orders_far_from_their_limit_cost_no_route_at_all() -> None:
    far = [limit("10", Decimal("1000")) for _ in range(1000)]
    evaluation = evaluate(far, SOL_USDC, NOW)
    assert (evaluation.triggers, evaluation.routes) == ([], 0)


def test_undecided_orders_past_the_budget_are_taken_first_on_the_next_ticks() -> None:
    # Many sizes, each order's limit a hair under its own route's price: no bucket edge
    # decides them, every one needs its own route.
    orders = [
        limit(str(amount), route_price(SOL_USDC, amount) - Decimal("0.0001"))
        for amount in (Decimal(100 + 7 * n) for n in range(40))
    ]
    deferred: list[str] = []
    fired: set[str] = set()
    ticks = 0
    while ticks < 10:
        ticks += 1
        # Signalled orders sit out the next ticks (the watcher re-signals only after 5 s).
        waiting = [o for o in orders if o.order_id not in fired]
        tick = evaluate(waiting, SOL_USDC, NOW, budget_s=60, max_routes=30, first=deferred)
        assert tick.routes <= 30 + TURN_ROUTES
        now_fired = {order_id for order_id, _ in tick.triggers}
        assert set(deferred) <= now_fired or tick.deferred  # last tick's leftovers go first
        assert not deferred or deferred[0] in now_fired
        fired |= now_fired
        deferred = tick.deferred
        if not deferred:
            break
    assert ticks > 1 and fired == {o.order_id for o in orders}


def test_a_sniper_fires_once_its_pool_is_open() -> None:
    sniper = WaitingOrder(new_order_id(), OrderType.SNIPER, "SOL", "USDC", Decimal(1), None)
    closed = [p.__class__(**{**p.__dict__, "opens_at": NOW + 60}) for p in SOL_USDC]
    assert evaluate([sniper], closed, NOW).triggers == []
    (order_id, trigger), *_ = evaluate([sniper], SOL_USDC, NOW).triggers
    assert (
        order_id == sniper.order_id
        and trigger.reason is TriggerReason.POOL_OPEN
        and trigger.decimals_out == 6
    )


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.decimals(min_value="0.01", max_value="3000", places=2), min_size=1, max_size=12),
    offsets_bps=st.lists(st.integers(min_value=-300, max_value=300), min_size=12, max_size=12),
)
def test_the_watcher_decides_as_a_route_of_each_order_would(
    amounts: list[Decimal], offsets_bps: list[int]
) -> None:
    orders = []
    for amount, offset in zip(amounts, offsets_bps, strict=False):
        exact = route_price(SOL_USDC, amount)
        orders.append(limit(str(amount), exact * (1 + Decimal(offset) / 10_000)))
    evaluation = evaluate(orders, SOL_USDC, NOW, budget_s=60)
    fired = {order_id for order_id, _ in evaluation.triggers}
    expected = {
        o.order_id
        for o in orders
        if o.limit_price is not None and route_price(SOL_USDC, o.amount) >= o.limit_price
    }
    assert fired == expected


def test_a_pair_without_a_direct_pool_is_priced_through_other_tokens() -> None:
    # JUP → SOL has no pool: the router goes JUP → USDC → SOL, and so does the watcher.
    pools = genesis_pools()
    routed = plan_route(pools, "JUP", "SOL", 100 * 10**6, now=NOW).amount_out
    price = Decimal(routed).scaleb(-9) / 100  # SOL per JUP for 100 JUP
    reachable = limit("100", price * Decimal("0.99"), "JUP", "SOL")
    unreachable = limit("100", price * Decimal("1.01"), "JUP", "SOL")
    evaluation = evaluate([reachable, unreachable], pools, NOW)
    assert [order_id for order_id, _ in evaluation.triggers] == [reachable.order_id]
    assert all(trigger.reason is TriggerReason.LIMIT_REACHED for _, trigger in evaluation.triggers)


def conditional(kind: OrderType, amount: str, **fields: object) -> WaitingOrder:
    return WaitingOrder(new_order_id(), kind, "SOL", "USDC", Decimal(amount), None, **fields)  # type: ignore[arg-type]


def moved(pools: list[Pool], sol_in: int) -> list[Pool]:
    """The SOL/USDC pools after someone sells (positive) or buys (negative) SOL."""
    out = []
    for pool in pools:
        if sol_in > 0:
            out.append(pool.swap("SOL", sol_in, NOW)[1])
        else:
            out.append(pool.swap("USDC", -sol_in * 150 // 1000, NOW)[1])  # lamports → µUSDC at ≈150
    return out


def test_stops_fire_when_the_price_falls_to_them_and_take_profits_when_it_rises() -> None:
    now = route_price(SOL_USDC, Decimal(10))
    stop = conditional(OrderType.STOP_LOSS, "10", trigger_price=now * Decimal("0.98"))
    take = conditional(OrderType.TAKE_PROFIT, "10", trigger_price=now * Decimal("1.02"))
    assert evaluate([stop, take], SOL_USDC, NOW).triggers == []
    fallen = moved(SOL_USDC, 1_500 * 10**9)  # ≈ 5 % down
    risen = moved(SOL_USDC, -1_500 * 10**9)  # ≈ 5 % up
    assert [o for o, _ in evaluate([stop, take], fallen, NOW).triggers] == [stop.order_id]
    assert [o for o, _ in evaluate([stop, take], risen, NOW).triggers] == [take.order_id]


def test_a_trailing_stop_follows_the_price_up_and_fires_below_its_best() -> None:
    now = route_price(SOL_USDC, Decimal(10))
    trailing = conditional(OrderType.TRAILING_STOP, "10", trailing_bps=200, peak_price=now)
    risen = moved(SOL_USDC, -1_500 * 10**9)
    up = evaluate([trailing], risen, NOW)
    assert up.triggers == []
    peak, trigger = up.peaks[trailing.order_id]
    assert peak > now and trigger == (peak * Decimal("0.98")).quantize(
        Decimal("1e-18"), rounding="ROUND_DOWN"
    )
    raised = WaitingOrder(**{**trailing.__dict__, "peak_price": peak, "trigger_price": trigger})
    assert evaluate([raised], moved(risen, 300 * 10**9), NOW).triggers == []  # ≈ 1 % off its best
    fired = evaluate([raised], moved(risen, 1_500 * 10**9), NOW)  # ≈ 5 % off its best
    assert [o for o, _ in fired.triggers] == [trailing.order_id]
    assert trailing.order_id not in fired.peaks  # a falling price never lowers the trigger


JUP_USDC = [p for p in genesis_pools() if p.pair == "JUP/USDC"]


def jup_per_usdc(amount: Decimal) -> Decimal:
    """What `amount` USDC fetch in JUP per USDC, on the best split of the JUP/USDC pools."""
    units = int(amount * 10**6)
    out = best_route(pool_outputs(JUP_USDC, "USDC", NOW), units).amount_out
    return Decimal(out).scaleb(-6) / amount


def undecided_limits(owner: str, count: int) -> list[WaitingOrder]:
    """USDC → JUP limits each set between what its own amount fetches and what the
    first unit does: no price bound or bucket edge decides them, each needs a route of
    its own (and misses its limit)."""
    first_unit = best_marginal_price(JUP_USDC, "USDC", NOW)
    orders = []
    for amount in (Decimal(1000 + 10 * n) for n in range(count)):
        between = (jup_per_usdc(amount) + first_unit) / 2
        orders.append(replace(limit(str(amount), between, "USDC", "JUP"), owner=owner))
    return orders


def test_a_trailing_stop_fires_while_another_owners_orders_take_every_route() -> None:
    # The case: 600 of Alice's limits waiting undecided, Bob's trailing stop on
    # SOL/USDC, and a 3 % fall. A tick's budget is a few dozen routes.
    alices = undecided_limits("alice", 600)
    before = route_price(SOL_USDC, Decimal(10))
    bobs = replace(
        conditional(OrderType.TRAILING_STOP, "10", trailing_bps=200, peak_price=before),
        owner="bob",
    )
    fallen = moved(SOL_USDC, 1_000 * 10**9)
    assert route_price(fallen, Decimal(10)) < before * Decimal("0.975")  # ≈ 3 % down
    pools = fallen + JUP_USDC
    first = evaluate([*alices, bobs], pools, NOW, max_routes=30, budget_s=60)
    assert bobs.order_id in {order_id for order_id, _ in first.triggers}
    assert first.deferred  # Alice's orders did not all fit; they go on next tick
    # And every following tick, whatever Alice's leftovers: Bob takes his turn.
    risen = moved(SOL_USDC, -1_500 * 10**9)
    later = evaluate([*alices, bobs], risen + JUP_USDC, NOW, max_routes=30, budget_s=60, first=first.deferred)
    assert later.peaks[bobs.order_id][0] > before  # his peak follows the price up


def test_each_owners_orders_take_turns_and_leftovers_come_first() -> None:
    alices = undecided_limits("alice", 60)
    bobs = [replace(order, owner="bob") for order in undecided_limits("bob", 60)]
    deferred: list[str] = []
    seen: set[str] = set()
    ticks = 0
    while ticks < 40 and len(seen) < 120:
        ticks += 1
        tick = evaluate([*alices, *bobs], JUP_USDC, NOW, max_routes=20, budget_s=60, first=deferred)
        decided = {o.order_id for o in [*alices, *bobs]} - set(tick.deferred)
        # Both owners got turns in this tick, not one owner's orders alone.
        assert any(o.order_id in decided for o in alices) and any(o.order_id in decided for o in bobs)
        for owner in ("alice", "bob"):
            # An owner's leftovers from the last tick are all taken before any other of
            # its orders.
            mine = {o.order_id for o in [*alices, *bobs] if o.owner == owner}
            leftovers, others = mine & set(deferred), mine - set(deferred)
            assert leftovers <= decided or not (others & decided)
        seen |= decided
        deferred = tick.deferred
    assert ticks > 1 and seen == {o.order_id for o in [*alices, *bobs]}  # nobody's order starves


def test_an_order_is_priced_only_on_the_venues_it_allows() -> None:
    # 10 SOL fetch more on Meteora (lower fee) than on Raydium alone; a limit between the
    # two is reached for an order that may use both venues, not for one held to Raydium.
    amount = 10 * 10**9
    best = Decimal(plan_route(SOL_USDC, "SOL", "USDC", amount, now=NOW).amount_out).scaleb(-6) / 10
    raydium = plan_route(SOL_USDC, "SOL", "USDC", amount, dexes=["raydium"], now=NOW).amount_out
    at_limit = (best + Decimal(raydium).scaleb(-6) / 10) / 2
    anywhere = replace(limit("10", at_limit), max_hops=1)
    raydium_only = replace(anywhere, order_id=new_order_id(), dexes=("raydium",))
    fired = {o for o, _ in evaluate([anywhere, raydium_only], SOL_USDC, NOW, budget_s=60).triggers}
    assert fired == {anywhere.order_id}


def test_a_limit_only_a_route_through_other_tokens_reaches_fires_when_its_hops_allow() -> None:
    # SOL/USDC pushed down 3 %: SOL → USDT → USDC now pays more than the direct pools.
    pools = moved(SOL_USDC, 1_000 * 10**9) + [
        p for p in genesis_pools() if p.pair in ("SOL/USDT", "USDC/USDT")
    ]
    amount = 10 * 10**9
    planned = plan_route(pools, "SOL", "USDC", amount, now=NOW)
    direct = plan_route(pools, "SOL", "USDC", amount, max_hops=1, now=NOW)
    assert planned.hops == 2 and planned.amount_out > direct.amount_out
    at_limit = Decimal(planned.amount_out + direct.amount_out).scaleb(-6) / 2 / 10
    multi_hop = limit("10", at_limit)  # max_hops 3, as POST /orders defaults
    direct_only = replace(multi_hop, order_id=new_order_id(), max_hops=1)
    fired = {o for o, _ in evaluate([multi_hop, direct_only], pools, NOW, budget_s=60).triggers}
    assert fired == {multi_hop.order_id}


class Watched:
    """What a MarketWatcher reads, faked: the waiting orders' rows, the pools, the clocks;
    and the signals it sends."""

    def __init__(self, orders: list[WaitingOrder], pools: list[Pool]) -> None:
        self.orders, self.pools, self.at = orders, pools, 0.0
        self.sent: list[str] = []

    async def waiting(self, session: object) -> list[WaitingOrder]:
        return self.orders

    async def all(self) -> list[Pool]:
        return self.pools

    def now(self) -> float:
        return NOW

    def session(self) -> AbstractAsyncContextManager[None]:
        return nullcontext()

    async def signal(self, order_id: str, trigger: Trigger, parent_id: str | None) -> bool:
        self.sent.append(order_id)
        return True


async def test_an_order_that_took_its_trigger_is_not_signalled_again_while_queued_for_admission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reached = replace(limit("1", Decimal("140")), last_seq=3)
    watched = Watched([reached], SOL_USDC)
    monkeypatch.setattr(repository, "waiting", watched.waiting)
    watcher = MarketWatcher(
        watched,  # type: ignore[arg-type]
        watched,  # type: ignore[arg-type]
        watched.session,  # type: ignore[arg-type]
        watched.signal,
        clock=lambda: watched.at,
    )
    # Its workflow took the trigger and waits for admission (the system-wide orders per
    # minute): the row stays WAITING, with the same last event, for as long as that takes.
    for tick in range(120):  # 30 s of ticks
        watched.at = tick * TICK_S
        await watcher.tick()
    assert watched.sent == [reached.order_id]
    # Admitted, routed, its price slipped: it waits anew (a new event) and is signalled at once.
    watched.orders = [replace(reached, last_seq=7)]
    await watcher.tick()
    assert watched.sent == [reached.order_id] * 2
