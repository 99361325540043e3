"""The simulated market's public shapes: tokens, pools, executed transactions, the
wallet, and what operators send to /sim."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.decimals import DecimalText
from core.domain import Dex
from core.formatting import (
    format_amount,
    format_decimal,
    format_epoch,
    format_price,
    format_time,
)
from market.pools import Pool
from market.tokens import Token, decimals_of, find_token
from storage.models import ChainTransaction
from wallets.schemas import Balance, WalletView


class TokenView(BaseModel):
    symbol: str
    mint: str
    decimals: int

    @classmethod
    def of(cls, token: Token) -> TokenView:
        return cls(symbol=token.symbol, mint=token.mint, decimals=token.decimals)


class Items(BaseModel):
    items: list[dict[str, Any]]


class BalanceView(BaseModel):
    token: str
    total: str
    reserved: str
    available: str

    @classmethod
    def of(cls, balance: Balance) -> BalanceView:
        decimals = decimals_of(balance.token)
        return cls(
            token=balance.token,
            total=format_amount(balance.total, decimals),
            reserved=format_amount(balance.reserved, decimals),
            available=format_amount(balance.available, decimals),
        )


class WalletResponse(BaseModel):
    owner: str
    address: str
    balances: list[BalanceView]

    @classmethod
    def of(cls, wallet: WalletView) -> WalletResponse:
        return cls(
            owner=wallet.owner,
            address=wallet.address,
            balances=[BalanceView.of(b) for b in wallet.balances if find_token(b.token) is not None],
        )


def pool_view(pool: Pool) -> dict[str, Any]:
    """A pool with its mid price (quote token per base token), fee, and reserves or bins."""
    return {
        "pair": pool.pair,
        "dex": pool.dex,
        "mid_price": format_price(pool.mid_price()),
        "fee_bps": pool.fee_bps,
        "opens_at": format_epoch(pool.opens_at) if pool.opens_at else None,
        **pool.describe(),
    }


def transaction_view(tx: ChainTransaction) -> dict[str, Any]:
    return {
        "tx_hash": tx.tx_hash,
        "order_id": tx.order_id,
        "dex": tx.dex,
        "token_in": tx.token_in,
        "token_out": tx.token_out,
        "amount_in": format_decimal(tx.amount_in),
        "amount_out": format_decimal(tx.amount_out),
        "legs": tx.legs,
        "slot": tx.slot,
        # fees, compute units, slots, sandwiched (none for transactions before the fee market)
        "landing": tx.landing,
        "at": format_time(tx.at),
    }


def _positive_decimal(value: str) -> str:
    if Decimal(value) <= 0:  # the shape is DecimalText's
        raise ValueError('must be a positive decimal string such as "100"')
    return value


class NewPool(BaseModel):
    """A token listed later: its pool opens `activation_in_s` from now."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(examples=["NEWCOIN"], description="symbol of the new token, ^[A-Z0-9]{2,10}$")
    dex: Dex = Dex.RAYDIUM
    quote_token: str = Field("SOL", examples=["SOL"])
    liquidity: DecimalText = Field(examples=["1000"], description="quote_token worth on each side")
    price: DecimalText = Field("0.0001", description="quote_token per token")
    decimals: Annotated[int, Field(ge=0, le=12, strict=True)] = 6
    activation_in_s: Annotated[float, Field(ge=0, le=86_400)] = 30

    _positive = field_validator("liquidity", "price")(_positive_decimal)


class PriceMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pair: str = Field(pattern=r"^[A-Za-z0-9]{1,16}/[A-Za-z0-9]{1,16}$", examples=["SOL/USDC"])
    move_bps: Annotated[int, Field(ge=-5000, le=5000, strict=True)]
    dex: Dex | None = None


class WalletTopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="whose wallet (default: the caller's own)"
    )
    token: str = Field(examples=["SOL"], description="a listed token's symbol or mint")
    amount: DecimalText = Field(max_length=64, examples=["100"], description="human units to add")

    _positive = field_validator("amount")(_positive_decimal)


class CongestionFix(BaseModel):
    """POST /sim/congestion: hold the chain's congestion at `level` for `duration_s`."""

    model_config = ConfigDict(extra="forbid")

    level: Annotated[float, Field(ge=0, le=1, description="0 (empty blocks) to 1 (full)")]
    duration_s: Annotated[float, Field(gt=0, le=86_400)] = 60


class CongestionView(BaseModel):
    level: float
    from_slot: int
    until_slot: int


class FeeLevelsView(BaseModel):
    low: int
    medium: int
    high: int
    very_high: int


class FeesResponse(BaseModel):
    """GET /fees: recent priority fees (micro-lamports per compute unit) of landed
    transactions, as the percentiles p25/p50/p75/p95 of the last slots."""

    slot: int
    congestion: float
    micro_lamports_per_cu: FeeLevelsView
