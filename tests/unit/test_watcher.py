"""The market watcher's decisions and their cost: bounded per tick whatever the waiting
orders are, and the same decisions as routing every order on its own."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.orders import TriggerReason
from core.domain import OrderType
from core.ids import new_order_id
from market.pools import Pool, genesis_pools
from market.router import best_route, pool_outputs
from orders.repository import WaitingOrder
from orders.watcher import best_marginal_price, evaluate

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
    evaluation = evaluate([*never, fillable], SOL_USDC, NOW)
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
        tick = evaluate(waiting, SOL_USDC, NOW, budget_s=60, max_routes=30, first=set(deferred))
        assert tick.routes <= 30
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
    from market.routing import plan_route

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
