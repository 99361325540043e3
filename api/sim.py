"""Driving the simulated market (operator keys only): list a token later (sniper
orders), move prices (limit orders), top up the wallet. All write through the same
market every process sees."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import require_operator
from api.deps import MarketDep
from api.errors import DomainError, InvalidOrder
from api.schemas import AMOUNT_PATTERN
from market.errors import MarketError
from market.pools import DEXES, Dex, Pool, decimals, meteora_pool, raydium_pool
from market.tokens import find_token, format_amount, format_price, new_token, register_token, to_base_units

router = APIRouter(prefix="/sim", tags=["simulation"], dependencies=[Depends(require_operator)])
# A top-up is a test convenience, not a mint: at most this many base units at a time.
MAX_TOP_UP_UNITS = 2**63
NEW_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}$")


class PoolExists(DomainError):
    status, code, title = 409, "pool_exists", "Pool exists"


class NewPool(BaseModel):
    """A token listed later: its pool opens `activation_in_s` from now."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(examples=["NEWCOIN"], description="symbol of the new token, ^[A-Z0-9]{2,10}$")
    dex: Literal["raydium", "meteora"] = "raydium"
    quote_token: str = Field("SOL", examples=["SOL"])
    liquidity: str = Field(examples=["1000"], description="quote_token worth on each side")
    price: str = Field("0.0001", description="quote_token per token")
    decimals: Annotated[int, Field(ge=0, le=12, strict=True)] = 6
    activation_in_s: Annotated[float, Field(ge=0, le=86_400)] = 30

    @field_validator("liquidity", "price")
    @classmethod
    def _positive_decimal(cls, value: str) -> str:
        if not AMOUNT_PATTERN.match(value) or Decimal(value) <= 0:
            raise ValueError('must be a positive decimal string such as "1000"')
        return value


class PriceMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pair: str = Field(examples=["SOL/USDC"])
    move_bps: Annotated[int, Field(ge=-5000, le=5000, strict=True)]
    dex: Literal["raydium", "meteora"] | None = None


class WalletTopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(examples=["SOL"], description="a listed token's symbol or mint")
    amount: str = Field(max_length=64, examples=["100"], description="human units to add")

    @field_validator("amount")
    @classmethod
    def _positive_decimal(cls, value: str) -> str:
        if not AMOUNT_PATTERN.match(value) or Decimal(value) <= 0:
            raise ValueError('must be a positive decimal string such as "100"')
        return value


@router.post("/wallet")
async def top_up_wallet(body: WalletTopUp, market: MarketDep) -> dict[str, Any]:
    """Add funds to the simulated wallet."""
    token = find_token(body.token)
    if token is None:
        raise InvalidOrder("unknown_token", "token", f"{body.token!r} is not a listed token (GET /tokens)")
    amount = Decimal(body.amount)
    if -amount.as_tuple().exponent > token.decimals:  # type: ignore[operator]
        raise InvalidOrder(
            "invalid_amount", "amount", f"{token.symbol} has at most {token.decimals} decimals"
        )
    units = to_base_units(amount, token.decimals)
    if units >= MAX_TOP_UP_UNITS:
        raise InvalidOrder("invalid_amount", "amount", "must be under 2^63 base units")
    balance = await market.fund_wallet(token.symbol, units)
    return {"token": token.symbol, "mint": token.mint, "amount": format_amount(balance, token.decimals)}


@router.post("/pools", status_code=status.HTTP_201_CREATED)
async def list_new_pool(body: NewPool, market: MarketDep) -> dict[str, Any]:
    """List a new token in a pool that opens later (what sniper orders wait for)."""
    symbol = body.token.upper()
    if not NEW_SYMBOL.match(symbol):
        raise InvalidOrder("invalid_token", "token", "must match ^[A-Z0-9]{2,10}$")
    quote = find_token(body.quote_token)
    if quote is None:
        raise InvalidOrder("unknown_token", "quote_token", f"{body.quote_token!r} is not a listed token")
    existing = find_token(symbol)
    if existing is not None and existing.decimals != body.decimals:
        raise InvalidOrder(
            "invalid_token", "decimals", f"{symbol} is listed with {existing.decimals} decimals"
        )
    token = existing or new_token(symbol, body.decimals)
    register_token(token)
    pool = _new_pool(body.dex, token.symbol, quote.symbol, body)
    pool = _with_listing(pool, market.now() + body.activation_in_s, (token,) if existing is None else ())
    if not await market.list_pool(pool):
        raise PoolExists(f"{pool.pool_id} already exists")
    return {
        "pool": pool.pool_id,
        "dex": pool.dex,
        "pair": pool.pair,
        "token": {"symbol": token.symbol, "mint": token.mint, "decimals": token.decimals},
        "mid_price": format_price(pool.mid_price()),
        "opens_in_s": body.activation_in_s,
    }


@router.post("/price")
async def move_price(body: PriceMove, market: MarketDep) -> dict[str, Any]:
    """Move the pair's pools (or one venue's) by trading against them."""
    base, _, quote = body.pair.upper().partition("/")
    pools = await market.pools(base, quote)
    if body.dex is not None:
        pools = [p for p in pools if p.dex == body.dex]
    if not pools:
        raise InvalidOrder("unknown_pair", "pair", f"no pool trades {body.pair} (see GET /markets)")
    if body.move_bps == 0:
        raise InvalidOrder("invalid_move", "move_bps", "must not be 0")
    items = []
    for pool in pools:
        # move_bps is about the pair as named; a pool that lists it the other way round moves inversely.
        move = body.move_bps if pool.base == base else -body.move_bps
        try:
            before, after, token_in, amount_in = await market.move_price(pool.pool_id, move)
        except MarketError as error:
            raise InvalidOrder("invalid_move", "move_bps", error.message) from None
        items.append(
            {
                "pool": pool.pool_id,
                "dex": pool.dex,
                "pair": pool.pair,
                "mid_price_before": format_price(before),
                "mid_price_after": format_price(after),
                "token_in": token_in,
                "amount_in": format(Decimal(amount_in).scaleb(-decimals(token_in)).normalize(), "f"),
            }
        )
    return {"items": items}


def _new_pool(dex: Dex, symbol: str, quote: str, body: NewPool) -> Pool:
    assert dex in DEXES
    liquidity = Decimal(body.liquidity)
    if dex == "raydium":
        return raydium_pool(symbol, quote, str(liquidity / Decimal(body.price)), body.price)
    return meteora_pool(symbol, quote, body.price, str(liquidity / 50), bin_step=20, bins_each_side=50)


def _with_listing(pool: Pool, opens_at: float, listed: tuple[Any, ...]) -> Pool:
    from dataclasses import replace

    return replace(pool, opens_at=opens_at, listed=listed)
