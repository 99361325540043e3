"""Amounts and prices as clients send them: one decimal-string field and one check for
every endpoint (orders, quotes, strategies, /sim). The text is bounded and normalised
when the body is parsed, so nothing huge or in exponent form (`1E+999999`) is ever
parsed into a Decimal, carried into a workflow's input, an event or Redis; its value is
then checked against what the tables keep (NUMERIC(40, 18))."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator

from core.errors import InvalidInput
from core.formatting import DECIMAL_STRING, format_decimal

DECIMAL_TEXT_MAX_LENGTH = 64
# Amounts and prices are stored as NUMERIC(40, 18): 22 digits before the point, 18 after.
STORED_DIGITS, STORED_DECIMALS = 40, 18
STORED_LIMIT = Decimal(10) ** (STORED_DIGITS - STORED_DECIMALS)


def plain_decimal(value: str) -> str:
    """The shape of a decimal field (ASCII digits, one optional point, at most 64
    characters), normalised: `"001.50"` → `"1.5"`. A pydantic validator (ValueError)."""
    if len(value) > DECIMAL_TEXT_MAX_LENGTH or not DECIMAL_STRING.fullmatch(value):
        raise ValueError(
            f'must be a decimal string such as "1.5" (digits, one optional point, '
            f"at most {DECIMAL_TEXT_MAX_LENGTH} characters)"
        )
    text = format_decimal(Decimal(value))
    assert text is not None
    return text


# The type of every amount and price field of a request body.
DecimalText = Annotated[str, AfterValidator(plain_decimal)]


def positive_decimal(
    field: str,
    text: str,
    *,
    code: str | None = None,
    max_decimals: int = STORED_DECIMALS,
    below: Decimal = STORED_LIMIT,
    unit: str | None = None,
) -> Decimal:
    """The value of an amount or price field, or a 422 (`code`, default `invalid_<field>`)
    naming the field: a plain decimal string, greater than 0, with at most `max_decimals`
    decimals (`unit`: whose precision that is, e.g. a token) and under `below`."""
    code = code or f"invalid_{field}"
    try:
        text = plain_decimal(text)
    except ValueError as error:
        raise InvalidInput(code, field, str(error)) from None
    value = Decimal(text)
    if value <= 0:
        raise InvalidInput(code, field, "must be greater than 0")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: the shape has no NaN or Infinity
    if -exponent > max_decimals:
        whose = f"{unit} has" if unit else "takes"
        raise InvalidInput(code, field, f"{whose} at most {max_decimals} decimals")
    if value >= below:
        limit = f"10^{STORED_DIGITS - STORED_DECIMALS}" if below == STORED_LIMIT else format_decimal(below)
        raise InvalidInput(code, field, f"must be under {limit}")
    return value
