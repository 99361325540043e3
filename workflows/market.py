"""The market's own singletons, each run once for the whole system: background trading
and the watcher that wakes waiting orders.

A singleton workflow (fixed id) keeps one long-running, heartbeating activity going;
any worker may run it, and if that worker dies another picks it up. Its history stays
short: it continues as new every few rounds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.market import MarketActivities
    from contracts.market import BackgroundTradingRequest, WatchRequest
    from core.temporal import EXECUTION_TASK_QUEUE

ROUND = timedelta(seconds=60)
ROUNDS_PER_RUN = 60


async def run_rounds(activity: Any, request: Any) -> None:
    """ROUNDS_PER_RUN rounds of one long, heartbeating activity, then continue as new."""
    for _ in range(ROUNDS_PER_RUN):
        await workflow.execute_activity_method(
            activity,
            request,
            task_queue=EXECUTION_TASK_QUEUE,
            start_to_close_timeout=ROUND + timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )
    workflow.continue_as_new()


@workflow.defn
class BackgroundTradingWorkflow:
    """The singleton background trader: other traders moving the pools."""

    @workflow.run
    async def run(self) -> None:
        await run_rounds(
            MarketActivities.run_background_trading, BackgroundTradingRequest(ROUND.total_seconds())
        )


@workflow.defn
class MarketWatchWorkflow:
    """The singleton market watcher: wakes waiting limit and sniper orders."""

    @workflow.run
    async def run(self) -> None:
        await run_rounds(MarketActivities.watch_market, WatchRequest(ROUND.total_seconds()))
