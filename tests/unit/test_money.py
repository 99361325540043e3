"""The arithmetic that guards the owner's money: minimums that add up, never a zero
minimum, and a pool that cannot fill a leg refusing it rather than taking the input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from activities.execution import leg_minimums
from contracts.orders import RouteDecision, RouteLeg
from market.pools import meteora_pool
from orders.routes import minimum_out


@given(
    outs=st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=3),
    slippage_bps=st.integers(min_value=1, max_value=5000),
)
def test_split_legs_minimums_add_up_to_at_least_the_orders(outs: list[int], slippage_bps: int) -> None:
    expected = sum(outs)
    decision = RouteDecision(
        "split", [RouteLeg("raydium", 1, out) for out in outs], expected, minimum_out(expected, slippage_bps)
    )
    legs = leg_minimums(decision)
    assert sum(leg.min_amount_out for leg in legs) >= decision.min_amount_out  # never below the order's
    assert all(
        leg.min_amount_out <= out for leg, out in zip(legs, outs, strict=True)
    )  # each leg can pay its own


@given(
    expected=st.integers(min_value=1, max_value=10**18), slippage_bps=st.integers(min_value=1, max_value=5000)
)
def test_an_order_expecting_anything_never_accepts_nothing(expected: int, slippage_bps: int) -> None:
    minimum = minimum_out(expected, slippage_bps)
    assert 1 <= minimum <= expected
    assert minimum == max(expected * (10_000 - slippage_bps) // 10_000, 1)


def test_a_dlmm_pool_that_cannot_fill_a_swap_says_so_and_changes_nothing() -> None:
    pool = meteora_pool("SOL", "USDC", "150", "100", bins_each_side=3)  # a few hundred USDC in all
    result, after = pool.swap("USDC", 10**6 * 10**6)  # a million USDC
    assert not result.complete and result.amount_out == 0
    assert after is pool
    small, _ = pool.swap("USDC", 10 * 10**6)
    assert small.complete and small.amount_out > 0
