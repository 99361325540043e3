"""Checking a new order against the market: tokens, pair, amount, limit and expiry."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from contracts.landing import LandingRequest
from core.decimals import positive_decimal
from core.domain import SwapMode
from core.formatting import to_base_units
from core.order_kinds import OrderKind, PriceField, kind_of
from market.tokens import Token, find_token
from orders.errors import InvalidOrder
from orders.landing import landing_request
from orders.schemas import OrderCreate

MAX_BASE_UNITS = 2**64
DEFAULT_EXPIRY_S = 3600
SNIPER_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}$")
# What the pools trade only grows (pools open, none close), so a pair or token a
# process has not seen yet is the one case that needs a fresh read of the pools.
MAYBE_LISTED_SINCE = frozenset({"unknown_token", "unsupported_pair"})


@dataclass(frozen=True)
class ValidOrder:
    token_in: Token
    token_out: str  # a symbol; for a sniper order possibly not listed yet
    units: int  # the amount in base units: of token_in (exact-in) or token_out (exact-out)
    limit_price: Decimal | None
    expires_in_s: int | None
    landing: LandingRequest
    amount: Decimal = Decimal(0)
    swap_mode: SwapMode = SwapMode.EXACT_IN
    max_hops: int = 3
    dexes: list[str] | None = None
    trigger_price: Decimal | None = None
    trailing_bps: int | None = None


def validate_order(body: OrderCreate, pairs: Collection[frozenset[str]]) -> ValidOrder:
    """Checks a schema-valid body against the market (`pairs`: what the pools trade)."""
    token_in = _listed("token_in", _required("token_in", body.token_in))
    token_out_text = _required("token_out", body.token_out)
    amount_text = _required("amount", body.amount)
    kind = kind_of(body.type)
    if kind.listed_token_out:
        token_out = _listed("token_out", token_out_text).symbol
    else:
        # A sniper names a token that may not be listed yet: check its shape only.
        listed = find_token(token_out_text)
        token_out = listed.symbol if listed else token_out_text.upper()
        if listed is None and not SNIPER_SYMBOL.fullmatch(token_out):
            raise InvalidOrder(
                "invalid_token",
                "token_out",
                "must be a listed token or a symbol like NEWCOIN (^[A-Z0-9]{2,10}$)",
            )
    if token_in.symbol == token_out:
        raise InvalidOrder("same_token", "token_out", "token_in and token_out must differ")
    if body.swap_mode is SwapMode.EXACT_OUT and not kind.exact_out:
        raise InvalidOrder("invalid_swap_mode", "swap_mode", "exact_out is for market orders")
    amount_token = token_in if body.swap_mode is SwapMode.EXACT_IN else _listed("token_out", token_out)
    amount = positive_decimal(
        "amount", amount_text, max_decimals=amount_token.decimals, unit=amount_token.symbol
    )
    units = to_base_units(amount, amount_token.decimals)
    if units >= MAX_BASE_UNITS:
        raise InvalidOrder("invalid_amount", "amount", "must be under 2^64 base units")
    if kind.listed_token_out and not connected(pairs, token_in.symbol, token_out, body.max_hops):
        within = "directly" if body.max_hops == 1 else f"within {body.max_hops} hops"
        raise InvalidOrder(
            "unsupported_pair", "token_out", f"no route {within} from {token_in.symbol} to {token_out}"
        )
    prices = {field: _price(body, kind, field) for field in PriceField}
    if kind.trails and body.trailing_bps is None:
        raise InvalidOrder(
            "invalid_trailing_bps", "trailing_bps", f"a {body.type} needs trailing_bps (10–5000)"
        )
    if not kind.trails and body.trailing_bps is not None:
        raise InvalidOrder("invalid_trailing_bps", "trailing_bps", f"{body.type} orders take no trailing_bps")
    expires_in_s = None
    if kind.waits is None:
        if body.expires_in_s is not None:
            raise InvalidOrder(
                "invalid_expiry", "expires_in_s", f"{body.type} orders do not wait, so they take no expiry"
            )
    else:
        expires_in_s = body.expires_in_s or DEFAULT_EXPIRY_S
    landing = landing_request(body.priority_fee, body.tip_lamports, body.simulate)
    dexes = sorted({str(dex) for dex in body.dexes}) if body.dexes is not None else None
    return ValidOrder(
        token_in,
        token_out,
        units,
        prices[PriceField.LIMIT_PRICE],
        expires_in_s,
        landing,
        amount,
        body.swap_mode,
        body.max_hops,
        dexes,
        prices[PriceField.TRIGGER_PRICE],
        body.trailing_bps,
    )


def connected(pairs: Collection[frozenset[str]], start: str, end: str, max_hops: int) -> bool:
    """Whether some path of at most `max_hops` pairs leads from `start` to `end`."""
    reached, frontier = {start}, {start}
    for _ in range(max_hops):
        frontier = {b for pair in pairs if len(pair & frontier) == 1 for b in pair - frontier} - reached
        reached |= frontier
        if end in reached:
            return True
    return end in reached


def _price(body: OrderCreate, kind: OrderKind, field: PriceField) -> Decimal | None:
    """A price field as the order's type wants it: required, allowed (a trailing stop's
    floor), or refused."""
    text: str | None = getattr(body, field.value)
    if text is None:
        if field is kind.requires:
            raise InvalidOrder(
                f"invalid_{field}", field, f"a {body.type} order needs {field} (token_out per token_in)"
            )
        return None
    if field not in kind.price_fields:
        raise InvalidOrder(f"invalid_{field}", field, f"{body.type} orders take no {field}")
    return positive_decimal(field, text)


def _required(field: str, value: str | None) -> str:
    if value is None:
        raise InvalidOrder("missing_field", field, "required (unless the order is placed from a quote_id)")
    return value


def _listed(field: str, symbol_or_mint: str) -> Token:
    token = find_token(symbol_or_mint)
    if token is None:
        raise InvalidOrder("unknown_token", field, f"{symbol_or_mint!r} is not a listed token (GET /tokens)")
    return token
