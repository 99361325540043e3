"""How numbers and times are shown: decimal strings without exponent or trailing zeros,
RFC 3339 UTC timestamps. The one place that formats them for clients and logs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

PRICE_PLACES = 9
# What clients send for amounts and prices: ASCII digits, one optional point, nothing
# else (no exponent, sign, whitespace or other scripts' digits). Use with fullmatch.
DECIMAL_STRING = re.compile(r"[0-9]+(\.[0-9]+)?")


def format_decimal(value: Decimal | None) -> str | None:
    """`Decimal("1.500")` → `"1.5"`; `None` stays `None`."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def from_base_units(amount: int, decimals: int) -> Decimal:
    return Decimal(amount).scaleb(-decimals)


def to_base_units(amount: Decimal, decimals: int) -> int:
    """Exact conversion; callers have already checked the number of decimals."""
    return int(amount.scaleb(decimals))


def format_amount(amount: int, decimals: int) -> str:
    """A base-unit integer as a plain decimal string in human units."""
    text = format_decimal(from_base_units(amount, decimals))
    assert text is not None
    return text


def format_price(value: Decimal, places: int = PRICE_PLACES) -> str:
    """A price, truncated (never rounded up) to `places` decimals."""
    text = format_decimal(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN))
    assert text is not None
    return text


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_epoch(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))
