"""The public shapes of an order: what clients send and what they read (GET, the
WebSocket, the Redis snapshot), one model each."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.decimals import DecimalText
from core.domain import Dex, FailureStage, OrderStatus, OrderType, SwapMode
from core.formatting import format_decimal, format_time
from storage.models import Order, OrderEvent, OrderFailure


class OrderCreate(BaseModel):
    """A new order. Amounts and prices are decimal strings in human units."""

    model_config = ConfigDict(extra="forbid")

    type: OrderType = OrderType.MARKET
    # Required, unless the order is placed from a quote (`quote_id`), which names them.
    token_in: str | None = Field(None, min_length=1, max_length=64, examples=["SOL"])
    token_out: str | None = Field(None, min_length=1, max_length=64, examples=["USDC"])
    amount: DecimalText | None = Field(
        None, max_length=64, examples=["1.5"], description="exact-in: of token_in; exact-out: of token_out"
    )
    slippage_bps: int = Field(50, ge=1, le=5000, strict=True)
    swap_mode: SwapMode = Field(
        SwapMode.EXACT_IN, description="exact_out: receive exactly `amount` (market orders)"
    )
    dexes: list[Dex] | None = Field(
        None, min_length=1, max_length=len(Dex), description="venues to route across"
    )
    max_hops: int = Field(3, ge=1, le=3, strict=True, description="1: the direct pair only")
    quote_id: str | None = Field(
        None, max_length=40, description="place the order a quote (POST /quotes) priced"
    )
    limit_price: DecimalText | None = Field(
        None, max_length=64, description="limit orders: token_out per token_in"
    )
    trigger_price: DecimalText | None = Field(
        None,
        max_length=64,
        description="stop_loss / take_profit: token_out per token_in that fires the order",
    )
    trailing_bps: int | None = Field(None, ge=10, le=5000, strict=True, description="trailing_stop: 10–5000")
    expires_in_s: int | None = Field(None, ge=1, le=604_800, strict=True)
    priority_fee: str | dict[str, Any] = Field(
        "auto",
        description='"auto" (the medium level of recent fees), "none", {"level": "low"|"medium"|"high"|'
        '"very_high", "max_lamports": N} or {"micro_lamports_per_cu": N}',
    )
    tip_lamports: int | None = Field(
        None, strict=True, description="a block-engine tip (1 000 to 100 000 000): the private path"
    )
    simulate: bool = Field(
        True, strict=True, description="simulate before sending; a failing one is not sent"
    )


class OrderAccepted(BaseModel):
    order_id: str
    status: OrderStatus
    ws_url: str

    @classmethod
    def of(cls, order_id: str) -> OrderAccepted:
        return cls(order_id=order_id, status=OrderStatus.PENDING, ws_url=f"/ws/orders?orderId={order_id}")


class QuoteView(BaseModel):
    dex: str
    amount_out: str
    price: str
    fee_bps: int
    price_impact_bps: int
    min_amount_out: str | None = None
    slot: int | None = None


class RouteLegView(BaseModel):
    dex: str
    amount_in: str
    amount_out: str
    # Routes planned since multi-hop routing name each leg's pool, pair, hop and share.
    pool: str | None = None
    hop: int | None = None
    token_in: str | None = None
    token_out: str | None = None
    fee_amount: str | None = None
    percent: float | None = None


class FillView(BaseModel):
    dex: str
    pool: str | None
    token_in: str | None
    token_out: str | None
    amount_in: str
    amount_out: str


class FeesView(BaseModel):
    network_lamports: int
    priority_lamports: int
    tip_lamports: int
    total_sol: str
    # A real chain: rent put into token accounts the transaction made (the output's,
    # say). Not a fee and not in total_sol, but spent from the wallet's SOL.
    rent_lamports: int = 0


class OrderView(BaseModel):
    """The order as clients see it: GET /orders/{id}, the WebSocket snapshot, and the
    `active:order:{id}` snapshot in Redis."""

    order_id: str
    type: OrderType
    status: OrderStatus
    token_in: str
    token_out: str
    # Exact-in: what it spends. Exact-out: what it spent, once CONFIRMED (None before).
    amount_in: str | None
    slippage_bps: int
    limit_price: str | None
    trigger_price: str | None = None  # a trailing stop's moves up with the best price seen
    trailing_bps: int | None = None
    peak_price: str | None = None  # a trailing stop's best price seen
    quotes: list[QuoteView]
    selected_dex: str | None
    route: list[RouteLegView]
    min_amount_out: str | None
    amount_out: str | None
    executed_price: str | None
    tx_hash: str | None
    attempts: int
    failure_reason: str | None
    swap_mode: SwapMode = SwapMode.EXACT_IN
    amount: str | None = None  # as asked: of token_in (exact-in) or token_out (exact-out)
    max_amount_in: str | None = None  # exact-out: the most it may spend (what is reserved)
    max_hops: int | None = None
    dexes: list[str] | None = None
    quote_id: str | None = None
    parent_id: str | None = None  # the strategy that placed it
    # What the order asked of landing (None: accepted before the fee market).
    priority_fee: str | dict[str, Any] | None = None
    tip_lamports: int | None = None
    simulate: bool | None = None
    # How it landed, once CONFIRMED.
    fills: list[FillView] | None = None
    fees: FeesView | None = None
    compute_unit_limit: int | None = None
    compute_units_consumed: int | None = None
    micro_lamports_per_cu: int | None = None
    sent_slot: int | None = None
    landed_slot: int | None = None
    expected_amount_out: str | None = None
    realized_slippage_bps: int | None = None
    sandwiched: bool | None = None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, order: Order) -> OrderView:
        return cls(
            **(order.landing or {}),
            **(order.execution or {}),
            order_id=order.id,
            type=order.type,
            status=order.status,
            token_in=order.token_in,
            token_out=order.token_out,
            amount_in=(
                format_decimal(order.amount)
                if order.swap_mode is SwapMode.EXACT_IN
                else format_decimal(order.amount_in_filled)
            ),
            swap_mode=order.swap_mode,
            amount=format_decimal(order.amount),
            max_amount_in=format_decimal(order.max_amount_in),
            max_hops=order.max_hops,
            dexes=order.dexes,
            quote_id=order.quote["quote_id"] if order.quote else None,
            parent_id=order.parent_id,
            slippage_bps=order.slippage_bps,
            limit_price=format_decimal(order.limit_price),
            trigger_price=format_decimal(order.trigger_price),
            trailing_bps=order.trailing_bps,
            peak_price=format_decimal(order.peak_price),
            quotes=[QuoteView.model_validate(q) for q in order.quotes or []],
            selected_dex=order.selected_dex,
            route=[RouteLegView.model_validate(leg) for leg in order.route or []],
            min_amount_out=format_decimal(order.min_amount_out),
            amount_out=format_decimal(order.amount_out),
            executed_price=format_decimal(order.executed_price),
            tx_hash=order.tx_hash,
            attempts=order.attempts,
            failure_reason=order.failure_reason,
            created_at=format_time(order.created_at),
            updated_at=format_time(order.updated_at),
        )


class OrderPage(BaseModel):
    items: list[OrderView]
    next_cursor: str | None


class EventView(BaseModel):
    """One lifecycle event, as sent on the WebSocket and listed in the timeline."""

    type: Literal["EVENT"] = "EVENT"
    order_id: str
    seq: int
    status: OrderStatus
    at: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: OrderEvent) -> EventView:
        return cls(
            order_id=event.order_id,
            seq=event.seq,
            status=event.status,
            at=format_time(event.at),
            data=event.data,
        )


class FailureView(BaseModel):
    """One failed attempt of a step, as listed in the timeline."""

    type: Literal["FAILURE"] = "FAILURE"
    order_id: str
    activity: str
    attempt: int
    code: str
    reason: str
    retryable: bool
    stage: FailureStage | None = Field(
        None, description="a transaction's failure: simulation, landing or chain"
    )
    fee_lamports: int = Field(0, description="what the failed transaction paid (it landed and failed)")
    at: str

    @classmethod
    def of(cls, failure: OrderFailure) -> FailureView:
        return cls(
            order_id=failure.order_id,
            activity=failure.activity,
            attempt=failure.attempt,
            code=failure.code,
            reason=failure.reason,
            retryable=failure.retryable,
            stage=failure.stage,
            fee_lamports=failure.fee_lamports,
            at=format_time(failure.created_at),
        )


class SnapshotFrame(BaseModel):
    """The first frame of an order's WebSocket: the state after event `seq`."""

    type: Literal["SNAPSHOT"] = "SNAPSHOT"
    order_id: str
    seq: int
    status: OrderStatus
    order: OrderView


class Timeline(BaseModel):
    items: list[EventView | FailureView]
    next_after_seq: int | None = Field(None, description="pass it back as after_seq for the next page")


class StuckOrderView(BaseModel):
    order_id: str
    status: OrderStatus
    type: OrderType
    stuck_for_s: float
    workflow: str = Field(description="what Temporal says: RUNNING, COMPLETED, FAILED, …, or MISSING")


class StuckPage(BaseModel):
    items: list[StuckOrderView]


class ReplayAnswer(BaseModel):
    order_id: str
    action: str


class CancelAnswer(BaseModel):
    order_id: str
    status: OrderStatus
    cancel: Literal["accepted"] = "accepted"


class QuoteCreate(BaseModel):
    """POST /quotes: an order's trading fields; nothing is reserved or placed."""

    model_config = ConfigDict(extra="forbid")

    token_in: str = Field(min_length=1, max_length=64, examples=["SOL"])
    token_out: str = Field(min_length=1, max_length=64, examples=["USDC"])
    amount: DecimalText = Field(
        max_length=64, examples=["1.5"], description="exact-in: of token_in; exact-out: of token_out"
    )
    swap_mode: SwapMode = SwapMode.EXACT_IN
    slippage_bps: int = Field(50, ge=1, le=5000, strict=True)
    priority_fee: str | dict[str, Any] = "auto"
    tip_lamports: int | None = Field(None, strict=True)
    simulate: bool = Field(True, strict=True)
    dexes: list[Dex] | None = Field(None, min_length=1, max_length=len(Dex))
    max_hops: int = Field(3, ge=1, le=3, strict=True)

    def as_order(self) -> OrderCreate:
        return OrderCreate(type=OrderType.MARKET, **self.model_dump())


class QuoteLegView(BaseModel):
    dex: str
    pool: str
    token_in: str
    token_out: str
    amount_in: str
    amount_out: str
    fee_amount: str
    percent: float


class QuoteFees(BaseModel):
    network_lamports: int
    priority_lamports: int
    tip_lamports: int


class QuoteAnswer(BaseModel):
    quote_id: str
    expires_at: str
    swap_mode: SwapMode
    token_in: str
    token_out: str
    amount_in: str
    amount_out: str
    min_amount_out: str | None = None  # exact-in
    max_amount_in: str | None = None  # exact-out
    price: str = Field(description="token_out per token_in, as quoted")
    price_impact_bps: int
    slot: int
    route: list[QuoteLegView]
    fees: QuoteFees
