"""When a stop, take-profit or trailing stop fires: pure price arithmetic shared by the
placement (a trigger must not fire at once), the watcher and the views."""

from __future__ import annotations

from decimal import Decimal

from core.domain import OrderType
from core.order_kinds import Direction, kind_of

BPS = 10_000
PRICE_SCALE = 18  # the price columns' decimal places


def trailing_trigger(peak: Decimal, trailing_bps: int) -> Decimal:
    """A trailing stop fires `trailing_bps` below the best price it has seen, rounded
    down to the price columns' scale.

    Exact integer arithmetic: Decimal's context (28 significant digits) cannot hold a
    price of 1e10 or more at 18 places, and the watcher computes this for every
    trailing stop on every tick."""
    _, digits, exponent = peak.as_tuple()
    assert isinstance(exponent, int), f"not a finite price: {peak}"
    numerator = int("".join(map(str, digits)) or "0") * (BPS - trailing_bps)
    shift = exponent + PRICE_SCALE  # numerator × 10^shift ÷ BPS = the trigger in units of 1e-18
    units = numerator * 10**shift // BPS if shift >= 0 else numerator // (BPS * 10**-shift)
    return Decimal(f"{units}E-{PRICE_SCALE}")  # from a string: exact, whatever the context


def fires(order_type: OrderType, price: Decimal, trigger: Decimal) -> bool:
    """A stop (or trailing stop) fires at or below its trigger, a take-profit at or above."""
    if kind_of(order_type).fires is Direction.RISES:
        return price >= trigger
    return price <= trigger
