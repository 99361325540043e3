"""Strategies: thin routes over the strategies domain (strategies/)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from accounts.keys import NAME_PATTERN
from api.auth import KeyDep
from api.deps import StrategiesDep
from core.domain import StrategyAction, StrategyStatus
from orders.schemas import OrderPage
from strategies.schemas import (
    StrategyAccepted,
    StrategyActionAnswer,
    StrategyCreate,
    StrategyEvents,
    StrategyPage,
    StrategyView,
)

router = APIRouter(tags=["strategies"])


@router.post(
    "/strategies",
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": StrategyAccepted, "description": "replay of an idempotent request"}},
)
async def create_strategy(
    body: StrategyCreate,
    response: Response,
    strategies: StrategiesDep,
    principal: KeyDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> StrategyAccepted:
    """Start a TWAP, DCA or bracket; its orders are child orders (`parent_id`). A retry
    with the same Idempotency-Key and body gets the same strategy (200), never a second."""
    started = await strategies.create(principal, body, idempotency_key)
    if started.replayed:
        response.status_code = status.HTTP_200_OK
    return started.accepted


@router.get("/strategies", response_model=StrategyPage)
async def list_strategies(
    strategies: StrategiesDep,
    principal: KeyDep,
    owner: Annotated[
        str | None, Query(pattern=NAME_PATTERN.pattern, description="operator keys: only this owner's")
    ] = None,
    status_: Annotated[StrategyStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> StrategyPage:
    """Your strategies, newest first (an operator key sees everyone's)."""
    return await strategies.page(principal, owner=owner, status=status_, cursor=cursor, limit=limit)


@router.get("/strategies/{strategy_id}", response_model=StrategyView)
async def get_strategy(strategy_id: str, strategies: StrategiesDep, principal: KeyDep) -> StrategyView:
    """The strategy, its progress, its order counts and its newest 100 orders."""
    return await strategies.get(principal, strategy_id)


@router.get("/strategies/{strategy_id}/orders", response_model=OrderPage)
async def strategy_orders(
    strategy_id: str,
    strategies: StrategiesDep,
    principal: KeyDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> OrderPage:
    """Every order the strategy placed, newest first (as `GET /orders`): pass
    `next_cursor` back as `cursor` for the next page."""
    return await strategies.orders(principal, strategy_id, cursor=cursor, limit=limit)


@router.get("/strategies/{strategy_id}/events", response_model=StrategyEvents)
async def strategy_events(
    strategy_id: str,
    strategies: StrategiesDep,
    principal: KeyDep,
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> StrategyEvents:
    """Every event (with `seq`), a page at a time."""
    return await strategies.events(principal, strategy_id, after_seq, limit)


@router.post("/strategies/{strategy_id}/pause", status_code=status.HTTP_202_ACCEPTED)
async def pause_strategy(
    strategy_id: str, strategies: StrategiesDep, principal: KeyDep
) -> StrategyActionAnswer:
    """Hold future orders (a DCA pauses its Schedule)."""
    return await strategies.act(principal, strategy_id, StrategyAction.PAUSE)


@router.post("/strategies/{strategy_id}/resume", status_code=status.HTTP_202_ACCEPTED)
async def resume_strategy(
    strategy_id: str, strategies: StrategiesDep, principal: KeyDep
) -> StrategyActionAnswer:
    return await strategies.act(principal, strategy_id, StrategyAction.RESUME)


@router.post("/strategies/{strategy_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_strategy(
    strategy_id: str, strategies: StrategiesDep, principal: KeyDep
) -> StrategyActionAnswer:
    """Stop future orders; an order already executing finishes."""
    return await strategies.act(principal, strategy_id, StrategyAction.CANCEL)
