"""A strategy's steps: place a child order (through the same placement as POST /orders),
record progress and events, cancel a leg, and drive a DCA's Schedule."""

from __future__ import annotations

import logging
from decimal import Decimal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accounts.keys import Principal
from contracts.strategies import (
    ENDED,
    CancelChildRequest,
    PlaceChildRequest,
    PlacedChild,
    PlacementOutcome,
    ScheduleRequest,
    StrategyRecord,
)
from core.domain import OrderType, StrategyStatus, StrategyType
from core.errors import DomainError, ServiceUnavailable
from core.formatting import format_decimal, format_price
from market.tokens import find_token
from orders import repository
from orders.placement import OrderPlacement, child_idempotency_key
from orders.quotes import QuoteService
from orders.runs import OrderRuns, order_input, workflow_details
from orders.schemas import OrderCreate
from storage.models import Order
from strategies import repository as strategy_repository
from strategies.errors import StrategyNotFound
from strategies.runs import StrategyRuns
from strategies.service import StrategyService

log = logging.getLogger(__name__)


class StrategyActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        placement: OrderPlacement,
        quotes: QuoteService,
        strategies: StrategyService,
        order_runs: OrderRuns,
        strategy_runs: StrategyRuns,
    ) -> None:
        self._sessions, self._placement, self._quotes = sessions, placement, quotes
        self._strategies, self._order_runs, self._strategy_runs = strategies, order_runs, strategy_runs

    @activity.defn
    async def place_child(self, request: PlaceChildRequest) -> PlacedChild:
        """Place one order for the strategy, keyed by strategy and slice: a retry finds
        the order the first try placed. Refusals (no funds, no route) are results, not
        errors: the strategy records a failed child and goes on."""
        spec = request.spec
        key = child_idempotency_key(request.strategy_id, spec.key)
        async with self._sessions() as session:
            # A retry after the first try stored the order: that order, whatever the
            # price says now (checking it first could leave the stored one unstarted).
            existing = await repository.find_by_idempotency_key(session, request.owner, key)
            strategy = await strategy_repository.get(session, request.strategy_id)
        if existing is not None:
            return _placed(existing, request.strategy_id)
        if strategy is None or strategy.status.is_terminal:
            return PlacedChild(PlacementOutcome.REFUSED, reason=ENDED)
        if strategy.type is StrategyType.DCA:
            # A round is started by the Schedule, not by the strategy's workflow: a
            # workflow terminated or failed would leave the Schedule firing for ever.
            # Such a round places nothing and ends the strategy (its Schedule with it).
            gone = await self._strategies.workflow_gone(strategy)
            if gone is not None:
                await self._strategies.end_orphan(strategy, StrategyStatus.FAILED, gone)
                return PlacedChild(PlacementOutcome.REFUSED, reason=ENDED)
            # Cancelled (answered 202) but not ended yet: its Schedule may still fire
            # until the workflow deletes it. A workflow that cannot answer (stuck) fails
            # this try: the round places nothing until it can.
            if not await self._strategy_runs.accepts_orders(strategy.id):
                return PlacedChild(PlacementOutcome.REFUSED, reason=ENDED)
        try:
            body = OrderCreate(
                type=OrderType(spec.type),
                token_in=request.token_in,
                token_out=request.token_out,
                amount=spec.amount,
                slippage_bps=request.slippage_bps,
                trigger_price=spec.trigger_price,
                trailing_bps=spec.trailing_bps,
                expires_in_s=spec.expires_in_s,
            )
        except ValidationError as invalid:
            return PlacedChild(
                PlacementOutcome.REFUSED, reason=f"invalid_order: {invalid.errors()[0]['msg']}"
            )
        principal = Principal(key_id=f"strategy:{request.strategy_id}", owner=request.owner, operator=False)
        try:
            if spec.limit_price is not None:
                price = await self._quotes.price(await self._quotes.validate(body))
                if price < Decimal(spec.limit_price):
                    return PlacedChild(
                        PlacementOutcome.SKIPPED,
                        reason=f"the price is {format_price(price)}, worse than the limit {spec.limit_price}",
                    )
            placed = await self._placement.place(principal, body, key, parent=request.strategy_id)
        except ServiceUnavailable:
            raise  # retried: the placement may go through later
        except DomainError as refused:
            return PlacedChild(PlacementOutcome.REFUSED, reason=f"{refused.code}: {refused.detail}")
        async with self._sessions() as session:
            order = await repository.get(session, placed.accepted.order_id)
        assert order is not None
        return _placed(order, request.strategy_id)

    @activity.defn
    async def record_strategy(self, change: StrategyRecord) -> None:
        try:
            await self._strategies.record(change)
        except StrategyNotFound as missing:
            # Its start raced a request that failed and removed it: nothing will ever
            # be recorded, so the workflow ends instead of retrying for ever.
            raise ApplicationError(str(missing), type="STRATEGY_NOT_FOUND", non_retryable=True) from missing

    @activity.defn
    async def cancel_child(self, request: CancelChildRequest) -> bool:
        """Cancel a leg; False when it had ended or started executing already."""
        try:
            return await self._order_runs.cancel(request.order_id)
        except Exception as error:
            if await self._order_runs.state(request.order_id) not in ("RUNNING",):
                return False
            raise error

    @activity.defn
    async def withdraw_child(self, request: CancelChildRequest) -> None:
        """An order stored while its strategy's cancel came: never started, it ends
        CANCELLED and what it reserved goes back (once per order: its event key)."""
        await self._strategies.withdraw_child(
            request.order_id, "its strategy was cancelled while the order was placed"
        )

    @activity.defn
    async def create_schedule(self, request: ScheduleRequest) -> None:
        await self._strategy_runs.create_schedule(request.strategy)

    @activity.defn
    async def pause_schedule(self, request: ScheduleRequest) -> None:
        await self._strategy_runs.pause_schedule(request.strategy.strategy_id, paused=True)

    @activity.defn
    async def resume_schedule(self, request: ScheduleRequest) -> None:
        await self._strategy_runs.pause_schedule(request.strategy.strategy_id, paused=False)

    @activity.defn
    async def delete_schedule(self, request: ScheduleRequest) -> None:
        await self._strategy_runs.delete_schedule(request.strategy.strategy_id)


def _placed(order: Order, strategy_id: str) -> PlacedChild:
    token_in, token_out = find_token(order.token_in), find_token(order.token_out)
    assert token_in is not None
    return PlacedChild(
        PlacementOutcome.PLACED,
        order_id=order.id,
        input=order_input(order, token_in.decimals, token_out.decimals if token_out else None),
        summary=f"{order.type} {format_decimal(order.amount)} {order.token_in} → {order.token_out} ({strategy_id})",
        details=workflow_details(order),
    )
