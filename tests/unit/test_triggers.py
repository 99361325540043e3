"""A trailing stop's trigger: exact to the price columns' scale for any positive price,
so one large price can never stop the watcher's tick for every waiting order."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import floor

from hypothesis import given
from hypothesis import strategies as st

from core.domain import OrderType
from core.ids import new_order_id
from orders.repository import WaitingOrder
from orders.triggers import trailing_trigger
from orders.watcher import evaluate
from tests.unit.test_watcher import NOW, SOL_USDC, limit


def exact_trigger(peak: Decimal, trailing_bps: int) -> Decimal:
    """The same trigger by rational arithmetic: peak × (1 − bps/10 000), floored to 1e-18."""
    units = floor(Fraction(peak) * (10_000 - trailing_bps) / 10_000 * 10**18)
    return Decimal(f"{units}E-18")  # from a string: a division would round to 28 digits


def test_large_and_tiny_prices_have_a_trigger() -> None:
    assert trailing_trigger(Decimal("1e10"), 100) == Decimal("9900000000")
    assert trailing_trigger(Decimal("12345678901.123456789"), 250) == Decimal("12037036928.595370369275")
    assert trailing_trigger(Decimal("1e20"), 1) == Decimal("99990000000000000000")
    assert trailing_trigger(Decimal("1e-18"), 100) == 0  # below one unit of the scale
    assert trailing_trigger(Decimal("1e-16"), 100) == Decimal("99e-18")
    assert trailing_trigger(Decimal("1e20"), 1).as_tuple().exponent == -18


@given(
    coefficient=st.integers(min_value=1, max_value=10**40),
    exponent=st.integers(min_value=-40, max_value=10),
    trailing_bps=st.integers(min_value=1, max_value=9_999),
)
def test_the_trigger_is_the_trail_rounded_down_to_the_scale(
    coefficient: int, exponent: int, trailing_bps: int
) -> None:
    peak = Decimal(f"{coefficient}E{exponent}")
    trigger = trailing_trigger(peak, trailing_bps)
    assert trigger == exact_trigger(peak, trailing_bps)
    assert 0 <= trigger < peak
    assert trigger.as_tuple().exponent == -18


def test_a_trailing_stop_with_a_huge_peak_does_not_stop_the_tick_for_the_others() -> None:
    huge = WaitingOrder(
        new_order_id(),
        OrderType.TRAILING_STOP,
        "SOL",
        "USDC",
        Decimal(10),
        None,
        trailing_bps=100,
        peak_price=Decimal("1e20"),
    )
    fillable = limit("1", Decimal("140"))
    evaluation = evaluate([huge, fillable], SOL_USDC, NOW)
    # The price is far below 99 % of its peak: it fires, and the limit order still does.
    assert sorted(o for o, _ in evaluation.triggers) == sorted([huge.order_id, fillable.order_id])
