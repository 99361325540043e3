"""Request and response bodies, as the OpenAPI schema shows them."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AMOUNT_PATTERN = re.compile(r"^\d+(\.\d+)?$")


class OrderCreate(BaseModel):
    """A new order. Amounts and prices are decimal strings in human units."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["market", "limit", "sniper"] = "market"
    token_in: str = Field(min_length=1, max_length=64, examples=["SOL"])
    token_out: str = Field(min_length=1, max_length=64, examples=["USDC"])
    amount: str = Field(max_length=64, examples=["1.5"], description="exact-in amount of token_in")
    slippage_bps: int = Field(50, ge=1, le=5000, strict=True)
    limit_price: str | None = Field(None, max_length=64, description="limit orders: token_out per token_in")
    expires_in_s: int | None = Field(None, ge=1, le=604_800, strict=True)

    @field_validator("amount", "limit_price")
    @classmethod
    def _decimal_string(cls, value: str | None) -> str | None:
        if value is not None and not AMOUNT_PATTERN.match(value):
            raise ValueError('must be a decimal string such as "1.5" (digits, one optional point)')
        return value


class OrderAccepted(BaseModel):
    order_id: str
    status: str
    ws_url: str


class QuoteView(BaseModel):
    dex: str
    amount_out: str
    price: str
    fee_bps: int
    price_impact_bps: int


class RouteLegView(BaseModel):
    dex: str
    amount_in: str
    amount_out: str


class OrderView(BaseModel):
    order_id: str
    type: str
    status: str
    token_in: str
    token_out: str
    amount_in: str
    slippage_bps: int
    limit_price: str | None
    quotes: list[QuoteView]
    selected_dex: str | None
    route: list[RouteLegView]
    min_amount_out: str | None
    amount_out: str | None
    executed_price: str | None
    tx_hash: str | None
    attempts: int
    failure_reason: str | None
    created_at: str
    updated_at: str


class OrderPage(BaseModel):
    items: list[OrderView]
    next_cursor: str | None


class StuckOrderView(BaseModel):
    order_id: str
    status: str
    type: str
    stuck_for_s: float
    workflow: str = Field(description="what Temporal says: RUNNING, COMPLETED, FAILED, …, or MISSING")


class StuckPage(BaseModel):
    items: list[StuckOrderView]


class Timeline(BaseModel):
    items: list[dict[str, Any]]


class TokenView(BaseModel):
    symbol: str
    mint: str
    decimals: int


class Items(BaseModel):
    items: list[dict[str, Any]]
