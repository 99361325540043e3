"""The order validator and the small pure pieces the API and workflow rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.policies import backoff_ms
from core.formatting import from_base_units
from core.ids import is_order_id, new_order_id
from market.pools import genesis_pools
from market.tokens import find_token
from orders.errors import InvalidOrder
from orders.schemas import OrderCreate
from orders.validation import validate_order as validate

GENESIS_PAIRS = {frozenset((p.base, p.quote)) for p in genesis_pools()}


def validate_market_order(body: OrderCreate):  # type: ignore[no-untyped-def]
    valid = validate(body, GENESIS_PAIRS)
    return valid.token_in, find_token(valid.token_out), valid.units


def body(**overrides: object) -> OrderCreate:
    return OrderCreate.model_validate({"token_in": "SOL", "token_out": "USDC", "amount": "1.5", **overrides})


def test_a_good_order_becomes_base_units() -> None:
    token_in, token_out, units = validate_market_order(body(amount="1.000000001"))
    assert (token_in.symbol, token_out.symbol, units) == ("SOL", "USDC", 1_000_000_001)


def test_tokens_may_be_given_by_mint() -> None:
    _, token_out, _ = validate_market_order(body(token_out="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"))
    assert token_out.symbol == "USDC"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": "0"}, "invalid_amount"),
        ({"amount": "1.1234567"}, "ok"),  # USDC-style precision is fine for SOL
        ({"token_in": "USDC", "token_out": "SOL", "amount": "1.1234567"}, "invalid_amount"),
        ({"token_in": "USDC", "token_out": "USDC"}, "same_token"),
        ({"token_in": "DOGE"}, "unknown_token"),
        ({"token_in": "BONK", "token_out": "RAY"}, "ok"),  # BONK → SOL → USDC → RAY
        ({"token_in": "BONK", "token_out": "RAY", "max_hops": 2}, "unsupported_pair"),
        ({"token_in": "BONK", "token_out": "USDC", "max_hops": 1}, "unsupported_pair"),
        ({"type": "limit", "limit_price": "151", "swap_mode": "exact_out"}, "invalid_swap_mode"),
        ({"swap_mode": "exact_out", "amount": "150.1234567"}, "invalid_amount"),  # USDC has 6 decimals
        ({"token_in": None}, "missing_field"),
        ({"type": "limit"}, "invalid_limit_price"),
        ({"type": "limit", "limit_price": "0"}, "invalid_limit_price"),
        ({"type": "limit", "limit_price": "151"}, "ok"),
        ({"limit_price": "151"}, "invalid_limit_price"),
        ({"expires_in_s": 60}, "invalid_expiry"),
        ({"type": "sniper", "token_out": "NEWCOIN"}, "ok"),
        ({"type": "sniper", "token_out": "new-coin!"}, "invalid_token"),
        ({"type": "sniper", "token_out": "SOL"}, "same_token"),
    ],
)
def test_semantic_checks(overrides: dict[str, object], code: str) -> None:
    if code == "ok":
        validate_market_order(body(**overrides))
        return
    with pytest.raises(InvalidOrder) as caught:
        validate_market_order(body(**overrides))
    assert caught.value.code == code


@pytest.mark.parametrize("amount", ["-1", "1e9", "NaN", "Infinity", " 1", "1.", ".5", "1,5", ""])
def test_amount_must_be_a_plain_decimal_string(amount: str) -> None:
    with pytest.raises(ValidationError):
        body(amount=amount)


def test_ids_backoff_and_signatures() -> None:
    assert is_order_id(new_order_id()) and not is_order_id("ord_123")
    assert [backoff_ms(n) for n in (1, 2, 3, 10)] == [500, 1000, 2000, 10_000]


FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        ["SOL", "USDC", "BONK", "JUP", "NEWCOIN", "market", "limit", "sniper", "1.5", "0", "151"]
    ),
    st.from_regex(r"\A\d{1,25}(\.\d{1,20})?\Z"),
)
ORDER_FIELDS = [
    "type",
    "token_in",
    "token_out",
    "amount",
    "slippage_bps",
    "limit_price",
    "expires_in_s",
    "extra",
]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(ORDER_FIELDS), FIELD_VALUES))
def test_any_body_is_a_valid_order_or_a_coded_refusal(raw: dict[str, object]) -> None:
    """Whatever a client sends: a schema error, a coded InvalidOrder, or an order that
    is exactly its amount in base units, between two different tokens, under 2^64."""
    try:
        parsed = OrderCreate.model_validate(raw)
    except ValidationError:
        return
    try:
        valid = validate(parsed, GENESIS_PAIRS)
    except InvalidOrder as refusal:
        assert refusal.code and refusal.errors and refusal.errors[0]["field"] in ORDER_FIELDS
        return
    assert valid.token_in.symbol != valid.token_out
    assert 0 < valid.units < 2**64
    assert from_base_units(valid.units, valid.token_in.decimals) == Decimal(parsed.amount or 0)
    assert 1 <= parsed.slippage_bps <= 5000
