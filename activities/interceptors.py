"""Worker-wide activity behaviour, applied to every activity of every task queue."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

# The market's own long-running loops are not order work: they must not hold an order's slot.
UNBUDGETED_ACTIVITIES = frozenset({"run_background_trading", "watch_market"})
HEARTBEAT_EVERY_S = 0.5


class ActivityBudget(Interceptor):
    """At most N activities run at once in this process, regular and local alike.

    Temporal's concurrency caps are per worker, and a worker process runs three workers
    (one per task queue), so the process-wide cap is this interceptor: every activity
    body, on any of the workers, runs inside one shared semaphore.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._semaphore: asyncio.Semaphore | None = None

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Budgeted(next, self)

    @property
    def semaphore(self) -> asyncio.Semaphore:
        # Created lazily, inside the worker's event loop.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.slots)
        return self._semaphore


class _Budgeted(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, budget: ActivityBudget) -> None:
        super().__init__(next)
        self._budget = budget

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().activity_type in UNBUDGETED_ACTIVITIES:
            return await self.next.execute_activity(input)
        async with self._budget.semaphore:
            return await self.next.execute_activity(input)


class LogContext(Interceptor):
    """Every log line written inside an activity carries its order and workflow ids."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _WithLogContext(next)


class _WithLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id or ""
        context = {"workflow_id": workflow_id, "activity": info.activity_type}
        if workflow_id.startswith("ord_"):
            context["order_id"] = workflow_id
        with structlog.contextvars.bound_contextvars(**context):
            return await self.next.execute_activity(input)


class Heartbeats(Interceptor):
    """Regular activities heartbeat while they run, so a worker that dies is noticed
    within the activity's heartbeat timeout (seconds), not its start-to-close timeout."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Heartbeating(next)


class _Heartbeating(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.is_local or info.heartbeat_timeout is None:
            return await self.next.execute_activity(input)
        beating = asyncio.create_task(_beat())
        try:
            return await self.next.execute_activity(input)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def _beat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_S)
