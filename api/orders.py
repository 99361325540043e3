"""Placing and reading orders: thin routes over the orders domain (orders/)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from accounts.keys import NAME_PATTERN
from api.auth import KeyDep, OperatorDep
from api.deps import OrdersDep, PlacementDep, QuotesDep
from core.domain import OrderStatus, OrderType
from core.durations import parse_duration
from core.errors import InvalidInput
from orders.schemas import (
    CancelAnswer,
    OrderAccepted,
    OrderCreate,
    OrderPage,
    OrderView,
    QuoteAnswer,
    QuoteCreate,
    ReplayAnswer,
    StuckOrderView,
    StuckPage,
    Timeline,
)

router = APIRouter(tags=["orders"])


def _link(operation_id: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": {"order_id": "$response.body#/order_id"}}


# OpenAPI links: what a client (or a stateful fuzzer) can do with a placed order's id.
ORDER_LINKS = {
    "GetOrder": _link("get_order"),
    "GetOrderEvents": _link("order_timeline"),
    "CancelOrder": _link("cancel_order"),
}


@router.post("/quotes", response_model=QuoteAnswer)
async def create_quote(body: QuoteCreate, quotes: QuotesDep, principal: KeyDep) -> QuoteAnswer:
    """A firm quote: the route (both venues, every split, up to `max_hops` hops), its
    bounds and the fee estimate, valid for 30 s. Nothing is reserved or placed; place it
    with `POST /orders {"quote_id"}`."""
    return await quotes.create(principal, body)


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": OrderAccepted, "description": "replay of an idempotent request", "links": ORDER_LINKS},
        202: {"links": ORDER_LINKS},
    },
)
async def place_order(
    body: OrderCreate,
    response: Response,
    placement: PlacementDep,
    principal: KeyDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> OrderAccepted:
    """Place an order; watch it on the WebSocket at `ws_url`."""
    placed = await placement.place(principal, body, idempotency_key)
    if placed.replayed:
        response.status_code = status.HTTP_200_OK
    return placed.accepted


@router.get("/orders/stuck", response_model=StuckPage)
async def list_stuck_orders(
    orders: OrdersDep,
    _: OperatorDep,
    older_than: Annotated[str, Query(max_length=16, description="e.g. 30s, 5m, 2h")] = "5m",
) -> StuckPage:
    """Operator: non-terminal orders (not WAITING) unchanged for longer than `older_than`,
    with what Temporal says of each workflow (`order-engine orders stuck`)."""
    try:
        threshold = parse_duration(older_than)
    except ValueError as error:
        raise InvalidInput("invalid_duration", "older_than", str(error)) from None
    stuck = await orders.stuck(threshold)
    return StuckPage(
        items=[
            StuckOrderView(
                order_id=o.order_id,
                status=o.status,
                type=o.type,
                stuck_for_s=round(o.age.total_seconds(), 1),
                workflow=o.workflow,
            )
            for o in stuck
        ]
    )


@router.get("/orders/{order_id}", response_model=OrderView, operation_id="get_order")
async def get_order(order_id: str, orders: OrdersDep, principal: KeyDep) -> OrderView:
    """One order, as it stands."""
    return OrderView.of(await orders.get(principal, order_id))


@router.get("/orders", response_model=OrderPage)
async def list_orders(
    orders: OrdersDep,
    principal: KeyDep,
    owner: Annotated[
        str | None, Query(pattern=NAME_PATTERN.pattern, description="operator keys: only this owner's orders")
    ] = None,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    type_: Annotated[OrderType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> OrderPage:
    """Your orders, newest first (an operator key sees everyone's); pass `next_cursor`
    back as `cursor` for the next page."""
    return await orders.page(
        principal, owner=owner, status=status_, order_type=type_, cursor=cursor, limit=limit
    )


@router.get("/orders/{order_id}/events", response_model=Timeline, operation_id="order_timeline")
async def order_timeline(
    order_id: str,
    orders: OrdersDep,
    principal: KeyDep,
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Timeline:
    """Every lifecycle event (with `seq`) and every recorded failure, in time order, a
    page at a time: pass `next_after_seq` back as `after_seq`."""
    return await orders.timeline(principal, order_id, after_seq, limit)


@router.post("/orders/{order_id}/cancel", status_code=status.HTTP_202_ACCEPTED, operation_id="cancel_order")
async def cancel_order(order_id: str, orders: OrdersDep, principal: KeyDep) -> CancelAnswer:
    """Cancel an order that has not started executing (PENDING or WAITING); 409 after."""
    return await orders.cancel(principal, order_id)


@router.post("/orders/{order_id}/replay", status_code=status.HTTP_202_ACCEPTED)
async def replay(order_id: str, orders: OrdersDep, principal: OperatorDep) -> ReplayAnswer:
    """Operator: re-drive a stuck or failed order (never executed twice on chain)."""
    return ReplayAnswer(order_id=order_id, action=await orders.replay(principal, order_id))
