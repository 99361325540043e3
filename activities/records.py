"""Recording what happens to an order: PostgreSQL first (the truth), then Redis."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from core.domain import OrderStatus
from storage.events import EventPublisher
from storage.models import OrderFailure
from storage.orders import Transition, event_view, order_view, record_failure, record_transition
from workflows.inputs import TransitionRequest

log = logging.getLogger(__name__)

_DECIMAL_FIELDS = {"min_amount_out", "amount_out", "executed_price"}


class OrderRecords:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], events: EventPublisher) -> None:
        self._sessions = sessions
        self._events = events

    @activity.defn
    async def record_transition(self, request: TransitionRequest) -> int:
        """Move the order to a new status with its event; returns the event's seq."""
        return await self.transition(request)

    async def transition(self, request: TransitionRequest) -> int:
        changes: dict[str, Any] = {
            key: Decimal(value) if key in _DECIMAL_FIELDS and value is not None else value
            for key, value in request.changes.items()
        }
        status = OrderStatus(request.status) if request.status else None
        async with self._sessions() as session:
            recorded = await record_transition(
                session,
                Transition(request.order_id, request.event_key, status, changes, request.data),
            )
        if recorded is None:
            raise LookupError(f"order {request.order_id} does not exist")
        order, event = recorded
        await self._events.publish(
            order_view(order), event_view(event), terminal=OrderStatus(order.status).is_terminal
        )
        return event.seq

    async def attempt_failed(
        self,
        *,
        order_id: str,
        activity_name: str,
        attempt: int,
        code: str,
        reason: str,
        retryable: bool,
        backoff_ms: int | None,
    ) -> None:
        """Store a failed attempt; when another attempt follows, emit its retry event.

        The retry event keeps the order's current status (`data.retry` says what failed).
        """
        info = activity.info()
        # One per try: Temporal's own attempt number, whatever the order-level attempt is.
        key = f"{info.workflow_run_id}:{info.activity_id}:{info.attempt}"
        async with self._sessions() as session:
            await record_failure(
                session,
                OrderFailure(
                    order_id=order_id,
                    failure_key=key,
                    activity=activity_name,
                    attempt=attempt,
                    code=code,
                    reason=reason,
                    retryable=retryable,
                ),
            )
        if backoff_ms is None:
            return
        await self.transition(
            TransitionRequest(
                order_id=order_id,
                event_key=f"retry:{key}",
                status=None,  # unchanged
                data={
                    "retry": {
                        "activity": activity_name,
                        "attempt": attempt,
                        "reason": reason,
                        "backoff_ms": backoff_ms,
                    }
                },
            )
        )
