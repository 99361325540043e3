"""Recording what happens to an order: PostgreSQL first (the truth), then Redis."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.orders import RetryScheduled, TransitionRequest
from core.domain import FailureStage
from orders import repository
from orders.events import OrderEvents
from orders.recording import apply_transition
from storage.models import OrderFailure

log = logging.getLogger(__name__)


class OrderRecords:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], events: OrderEvents) -> None:
        self._sessions = sessions
        self._events = events

    @activity.defn
    async def record_transition(self, request: TransitionRequest) -> int:
        """Move the order to a new status with its event; returns the event's seq."""
        return await self.transition(request)

    async def transition(self, request: TransitionRequest) -> int:
        recorded = await apply_transition(self._sessions, self._events, request)
        if recorded is None:
            # A workflow whose order row is missing (its start raced a failed request):
            # nothing will ever be recorded for it, so it ends instead of retrying forever.
            raise ApplicationError(
                f"order {request.order_id} does not exist", type="ORDER_NOT_FOUND", non_retryable=True
            )
        return recorded.event.seq

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
        stage: FailureStage | None = None,
        fee_lamports: int = 0,
        transaction: str | None = None,
    ) -> None:
        """Store a failed attempt; when another attempt follows, emit its retry event.

        The retry event keeps the order's current status (`data.retry` says what failed).
        """
        info = activity.info()
        # One per try: Temporal's own attempt number, whatever the order-level attempt is.
        # And per transaction: a workflow task run again (a worker lost it) repeats the
        # step's id with a newly built transaction, whose landed failure paid its own fee.
        key = f"{info.workflow_run_id}:{info.activity_id}:{info.attempt}"
        if transaction is not None:
            key = f"{key}:{transaction}"
        async with self._sessions() as session:
            await repository.record_failure(
                session,
                OrderFailure(
                    order_id=order_id,
                    failure_key=key,
                    activity=activity_name,
                    attempt=attempt,
                    code=code,
                    reason=reason,
                    retryable=retryable,
                    stage=stage,
                    fee_lamports=fee_lamports,
                ),
            )
        if backoff_ms is None:
            return
        await self.transition(
            TransitionRequest(
                order_id=order_id,
                event_key=f"retry:{key}",
                status=None,  # unchanged
                retry=RetryScheduled(activity_name, attempt, reason, backoff_ms),
            )
        )
