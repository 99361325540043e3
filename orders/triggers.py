"""When a stop, take-profit or trailing stop fires: pure price arithmetic shared by the
placement (a trigger must not fire at once), the watcher and the views."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from core.domain import OrderType
from core.order_kinds import Direction, kind_of

BPS = Decimal(10_000)
PRICE_QUANTUM = Decimal("1e-18")  # the price columns' scale


def trailing_trigger(peak: Decimal, trailing_bps: int) -> Decimal:
    """A trailing stop fires `trailing_bps` below the best price it has seen."""
    return (peak * (BPS - trailing_bps) / BPS).quantize(PRICE_QUANTUM, rounding=ROUND_DOWN)


def fires(order_type: OrderType, price: Decimal, trigger: Decimal) -> bool:
    """A stop (or trailing stop) fires at or below its trigger, a take-profit at or above."""
    if kind_of(order_type).fires is Direction.RISES:
        return price >= trigger
    return price <= trigger
