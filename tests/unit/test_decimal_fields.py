"""Every amount and price field of every request body takes one shape and one check:
nothing in exponent form, huge, signed or not a number is ever parsed or carried."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core.decimals import DECIMAL_TEXT_MAX_LENGTH, positive_decimal
from core.errors import InvalidInput
from market.schemas import NewPool, WalletTopUp
from orders.errors import InvalidOrder
from orders.landing import landing_request
from orders.schemas import OrderCreate, QuoteCreate
from strategies.schemas import StrategyCreate

BAD_DECIMALS = [
    "1E+999999999",
    "1E+999999",
    "1e9",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "-1",
    "+1",
    " 1",
    "1.",
    ".5",
    "1,5",
    "١٢",  # Arabic-Indic digits: Decimal() would take them
    "",
    "9" * (DECIMAL_TEXT_MAX_LENGTH + 1),
]

# Each body with its amount and price fields: every one takes the same decimal text.
DECIMAL_FIELDS: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    *(
        (OrderCreate, {"token_in": "SOL", "token_out": "USDC", "amount": "1"}, field)
        for field in ("amount", "limit_price", "trigger_price")
    ),
    (QuoteCreate, {"token_in": "SOL", "token_out": "USDC", "amount": "1"}, "amount"),
    *(
        (StrategyCreate, {"type": "twap", "token_in": "SOL", "token_out": "USDC"}, field)
        for field in ("amount", "limit_price", "amount_per_order", "take_profit_price", "stop_loss_price")
    ),
    (WalletTopUp, {"token": "SOL", "amount": "1"}, "amount"),
    *((NewPool, {"token": "NEWCOIN", "liquidity": "1"}, field) for field in ("liquidity", "price")),
]


@pytest.mark.parametrize(("model", "base", "field"), DECIMAL_FIELDS)
@pytest.mark.parametrize("text", BAD_DECIMALS)
def test_no_body_takes_a_decimal_field_in_another_shape(
    model: type[BaseModel], base: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**base, field: text})
    assert [tuple(e["loc"]) for e in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize(("model", "base", "field"), DECIMAL_FIELDS)
def test_decimal_fields_are_carried_in_their_plain_normal_form(
    model: type[BaseModel], base: dict[str, Any], field: str
) -> None:
    assert getattr(model.model_validate({**base, field: "0012.3400"}), field) == "12.34"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_refused_or_a_bounded_plain_decimal(text: str) -> None:
    try:
        body = StrategyCreate.model_validate(
            {"type": "twap", "token_in": "SOL", "token_out": "USDC", "limit_price": text}
        )
    except ValidationError:
        return
    assert body.limit_price is not None
    assert len(body.limit_price) <= DECIMAL_TEXT_MAX_LENGTH
    assert "E" not in body.limit_price.upper() and Decimal(body.limit_price) == Decimal(text)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("0", {}, "must be greater than 0"),
        ("0.0000000000000000001", {}, "takes at most 18 decimals"),
        ("1.0000001", {"max_decimals": 6, "unit": "USDC"}, "USDC has at most 6 decimals"),
        ("1" + "0" * 22, {}, "must be under 10^22"),
        ("1E+999999999", {}, "must be a decimal string"),
    ],
)
def test_a_value_is_positive_within_its_decimals_and_what_the_tables_keep(
    text: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        positive_decimal("limit_price", text, **kwargs)
    assert caught.value.code == "invalid_limit_price"
    assert caught.value.errors == [{"field": "limit_price", "message": caught.value.detail}]
    assert message in caught.value.detail


def test_a_value_that_fits_is_its_decimal() -> None:
    assert positive_decimal("amount", "000.500", max_decimals=6) == Decimal("0.5")
    assert positive_decimal("price", "9" * 22 + "." + "9" * 18) < Decimal(10) ** 22


@pytest.mark.parametrize("priority_fee", [{"level": []}, {"level": {}}, {"level": None}, {}, {"level": 1}])
def test_any_json_as_a_priority_fee_level_is_a_coded_refusal(priority_fee: dict[str, Any]) -> None:
    with pytest.raises(InvalidOrder) as caught:
        landing_request(priority_fee, None, True)
    assert caught.value.code == "invalid_priority_fee"
