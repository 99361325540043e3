"""Checking a new order against the market: tokens, pair, amount, limit and expiry."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from contracts.landing import LandingRequest
from core.domain import OrderType
from core.formatting import to_base_units
from market.tokens import Token, find_token
from orders.errors import InvalidOrder
from orders.landing import landing_request
from orders.schemas import OrderCreate

MAX_BASE_UNITS = 2**64
# Prices are stored as NUMERIC(40, 18).
PRICE_DIGITS, PRICE_DECIMALS = 40, 18
PRICE_LIMIT = Decimal(10) ** (PRICE_DIGITS - PRICE_DECIMALS)
DEFAULT_EXPIRY_S = 3600
SNIPER_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}$")
# What the pools trade only grows (pools open, none close), so a pair or token a
# process has not seen yet is the one case that needs a fresh read of the pools.
MAYBE_LISTED_SINCE = frozenset({"unknown_token", "unsupported_pair"})


@dataclass(frozen=True)
class ValidOrder:
    token_in: Token
    token_out: str  # a symbol; for a sniper order possibly not listed yet
    units: int  # amount in base units of token_in
    limit_price: Decimal | None
    expires_in_s: int | None
    landing: LandingRequest


def validate_order(body: OrderCreate, pairs: Collection[frozenset[str]]) -> ValidOrder:
    """Checks a schema-valid body against the market (`pairs`: what the pools trade)."""
    token_in = _listed("token_in", body.token_in)
    if body.type is OrderType.SNIPER:
        # A sniper names a token that may not be listed yet: check its shape only.
        listed = find_token(body.token_out)
        token_out = listed.symbol if listed else body.token_out.upper()
        if listed is None and not SNIPER_SYMBOL.fullmatch(token_out):
            raise InvalidOrder(
                "invalid_token",
                "token_out",
                "must be a listed token or a symbol like NEWCOIN (^[A-Z0-9]{2,10}$)",
            )
    else:
        token_out = _listed("token_out", body.token_out).symbol
    if token_in.symbol == token_out:
        raise InvalidOrder("same_token", "token_out", "token_in and token_out must differ")
    amount = Decimal(body.amount)
    if amount <= 0:
        raise InvalidOrder("invalid_amount", "amount", "must be greater than 0")
    decimals = -amount.as_tuple().exponent  # type: ignore[operator]
    if decimals > token_in.decimals:
        raise InvalidOrder(
            "invalid_amount", "amount", f"{token_in.symbol} has at most {token_in.decimals} decimals"
        )
    units = to_base_units(amount, token_in.decimals)
    if units >= MAX_BASE_UNITS:
        raise InvalidOrder("invalid_amount", "amount", "must be under 2^64 base units")
    if body.type is not OrderType.SNIPER and frozenset((token_in.symbol, token_out)) not in pairs:
        raise InvalidOrder("unsupported_pair", "token_out", f"no venue trades {token_in.symbol}/{token_out}")
    limit_price = None
    if body.type is OrderType.LIMIT:
        if body.limit_price is None:
            raise InvalidOrder(
                "invalid_limit_price",
                "limit_price",
                "a limit order needs limit_price (token_out per token_in)",
            )
        limit_price = Decimal(body.limit_price)
        if limit_price <= 0:
            raise InvalidOrder("invalid_limit_price", "limit_price", "must be greater than 0")
        check_price_fits("limit_price", limit_price)
    elif body.limit_price is not None:
        raise InvalidOrder("invalid_limit_price", "limit_price", f"{body.type} orders take no limit_price")
    expires_in_s = None
    if body.type is OrderType.MARKET:
        if body.expires_in_s is not None:
            raise InvalidOrder(
                "invalid_expiry", "expires_in_s", "market orders do not wait, so they take no expiry"
            )
    else:
        expires_in_s = body.expires_in_s or DEFAULT_EXPIRY_S
    landing = landing_request(body.priority_fee, body.tip_lamports, body.simulate)
    return ValidOrder(token_in, token_out, units, limit_price, expires_in_s, landing)


def check_price_fits(field: str, price: Decimal) -> None:
    """A price the order row keeps exactly: at most 22 digits before the point, 18 after."""
    exponent = price.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > PRICE_DECIMALS:
        raise InvalidOrder(f"invalid_{field}", field, f"at most {PRICE_DECIMALS} decimals")
    if price >= PRICE_LIMIT:
        raise InvalidOrder(f"invalid_{field}", field, f"must be under 10^{PRICE_DIGITS - PRICE_DECIMALS}")


def _listed(field: str, symbol_or_mint: str) -> Token:
    token = find_token(symbol_or_mint)
    if token is None:
        raise InvalidOrder("unknown_token", field, f"{symbol_or_mint!r} is not a listed token (GET /tokens)")
    return token
