"""Strategies as clients send and see them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.strategies import dca_schedule_id
from core.decimals import DecimalText
from core.domain import OrderStatus, StrategyAction, StrategyStatus, StrategyType
from core.formatting import format_decimal, format_time
from storage.models import Strategy, StrategyEvent

MAX_SLICES = 500
# A strategy's view lists its newest orders, at most this many (a DCA may place thousands).
CHILD_ORDERS_SHOWN = 100


class StrategyCreate(BaseModel):
    """A new strategy; which fields it takes depends on its type (CONTRACT-2 §13)."""

    model_config = ConfigDict(extra="forbid")

    type: StrategyType
    token_in: str = Field(min_length=1, max_length=64, examples=["SOL"])
    token_out: str = Field(min_length=1, max_length=64, examples=["USDC"])
    slippage_bps: int = Field(50, ge=1, le=5000, strict=True)
    # twap and bracket: the whole amount of token_in (a bracket's legs each sell it).
    amount: DecimalText | None = Field(None, max_length=64)
    slices: int | None = Field(None, strict=True, description=f"twap: 2–{MAX_SLICES}")
    interval_s: int | None = Field(None, strict=True, description="twap: seconds between slices, ≥ 1")
    limit_price: DecimalText | None = Field(
        None, max_length=64, description="twap: skip a slice priced worse"
    )
    # dca
    amount_per_order: DecimalText | None = Field(None, max_length=64)
    every: str | None = Field(None, max_length=16, examples=["30s", "5m", "1h"])
    orders: int | None = Field(None, strict=True, description="dca: how many (default: until cancelled)")
    # bracket
    take_profit_price: DecimalText | None = Field(None, max_length=64)
    stop_loss_price: DecimalText | None = Field(None, max_length=64)
    trailing_bps: int | None = Field(None, strict=True, description="bracket: the stop trails, 10–5000")
    expires_in_s: int | None = Field(None, strict=True, description="bracket: 1–604800, default 604800")


class StrategyAccepted(BaseModel):
    strategy_id: str
    status: StrategyStatus
    ws_url: str
    schedule_id: str | None = None  # dca: its Temporal Schedule

    @classmethod
    def of(cls, strategy_id: str, schedule_id: str | None) -> StrategyAccepted:
        return cls(
            strategy_id=strategy_id,
            status=StrategyStatus.RUNNING,
            ws_url=f"/ws/strategies?strategyId={strategy_id}",
            schedule_id=schedule_id,
        )


class Progress(BaseModel):
    orders_placed: int = 0
    orders_confirmed: int = 0
    orders_failed: int = 0  # failed or expired, or could not be placed (no funds, …)
    orders_skipped: int = 0  # twap slices priced worse than its limit
    amount_in_filled: str = "0"
    amount_out: str = "0"
    average_price: str | None = None  # volume-weighted: amount_out / amount_in_filled


@dataclass(frozen=True)
class ChildTotals:
    """A strategy's orders of one status: how many, what they spent and received."""

    status: OrderStatus
    count: int
    amount_in: Decimal | None
    amount_out: Decimal | None


class OrderCounts(BaseModel):
    """Every order a strategy placed, counted (`orders` lists the newest few)."""

    total: int = 0
    by_status: dict[OrderStatus, int] = Field(default_factory=dict)


class StrategyView(BaseModel):
    model_config = ConfigDict(extra="allow")  # the type's parameters, as they were sent

    strategy_id: str
    type: StrategyType
    status: StrategyStatus
    owner: str
    token_in: str
    token_out: str
    progress: Progress
    # Its newest CHILD_ORDERS_SHOWN order ids, oldest first; every one, a page at a time:
    # GET /strategies/{id}/orders.
    orders: list[str]
    order_counts: OrderCounts = Field(default_factory=OrderCounts)
    schedule_id: str | None = None
    expires_at: str | None = None
    created_at: str
    updated_at: str

    @classmethod
    def of(
        cls, strategy: Strategy, progress: Progress, orders: list[str], counts: OrderCounts | None = None
    ) -> StrategyView:
        parameters = {k: v for k, v in strategy.params.items() if k not in ("type", "token_in", "token_out")}
        # A DCA's `orders` (how many) would clash with the list of its orders.
        if "orders" in parameters:
            parameters["orders_limit"] = parameters.pop("orders")
        return cls(
            **parameters,
            strategy_id=strategy.id,
            type=strategy.type,
            status=strategy.status,
            owner=strategy.owner,
            token_in=strategy.params["token_in"],
            token_out=strategy.params["token_out"],
            progress=progress,
            orders=orders,
            order_counts=counts or OrderCounts(),
            schedule_id=dca_schedule_id(strategy.id) if strategy.type is StrategyType.DCA else None,
            expires_at=format_time(strategy.expires_at) if strategy.expires_at else None,
            created_at=format_time(strategy.created_at),
            updated_at=format_time(strategy.updated_at),
        )


def progress_of(strategy: Strategy, totals: list[ChildTotals]) -> Progress:
    confirmed = [t for t in totals if t.status is OrderStatus.CONFIRMED]
    failed = sum(t.count for t in totals if t.status in (OrderStatus.FAILED, OrderStatus.EXPIRED))
    amount_in = sum((t.amount_in or Decimal(0) for t in confirmed), Decimal(0))
    amount_out = sum((t.amount_out or Decimal(0) for t in confirmed), Decimal(0))
    return Progress(
        orders_placed=sum(t.count for t in totals),
        orders_confirmed=sum(t.count for t in confirmed),
        orders_failed=failed + strategy.orders_unfunded,
        orders_skipped=strategy.orders_skipped,
        amount_in_filled=format_decimal(amount_in) or "0",
        amount_out=format_decimal(amount_out) or "0",
        average_price=format_decimal((amount_out / amount_in).quantize(Decimal("1e-12")))
        if amount_in
        else None,
    )


def counts_of(totals: list[ChildTotals]) -> OrderCounts:
    return OrderCounts(
        total=sum(t.count for t in totals),
        by_status={t.status: t.count for t in sorted(totals, key=lambda t: t.status)},
    )


class StrategyPage(BaseModel):
    items: list[StrategyView]
    next_cursor: str | None


class StrategyEventView(BaseModel):
    """One event, as sent on the WebSocket and listed by /strategies/{id}/events."""

    type: Literal["EVENT"] = "EVENT"
    strategy_id: str
    seq: int
    status: StrategyStatus
    event: str
    at: str
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, event: StrategyEvent) -> StrategyEventView:
        data = dict(event.data)
        return cls(
            strategy_id=event.strategy_id,
            seq=event.seq,
            status=event.status,
            event=str(data.pop("event", "")),
            at=format_time(event.created_at),
            data=data,
        )


class StrategyEvents(BaseModel):
    items: list[StrategyEventView]
    next_after_seq: int | None = None


class StrategySnapshot(BaseModel):
    type: Literal["SNAPSHOT"] = "SNAPSHOT"
    strategy_id: str
    seq: int
    status: StrategyStatus
    strategy: StrategyView


class StrategyActionAnswer(BaseModel):
    strategy_id: str
    action: StrategyAction
    status: StrategyStatus  # as it stands; the workflow records the change as an event
