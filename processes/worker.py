"""The Temporal worker process (`order-engine worker`, `python worker.py`).

One process runs three Temporal workers that share one activity budget:
- `orders`: order workflows and their local activities (quotes, routing, build,
  submit, confirm, records); strategy workflows, DCA rounds and their activities
  (placing a child order, records, a DCA's Schedule);
- `orders-admission`: the rate-limited admission step (server-enforced, all workers);
- `orders-execution`: the market's long-running loops, and build, submit and confirm
  for order workflows started before those became local activities.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.execution import ExecutionActivities
from activities.interceptors import ActivityBudget, Heartbeats, LogContext
from activities.market import MarketActivities, signal_trigger
from activities.quotes import QuoteActivities
from activities.records import OrderRecords
from activities.strategies import StrategyActivities
from composition import built_services
from contracts.market import BACKGROUND_TRADING_WORKFLOW_ID, MARKET_WATCH_WORKFLOW_ID
from contracts.policies import STICKY_TO_START
from core.logs import configure_logging
from core.settings import Settings, get_settings
from core.temporal import ADMISSION_TASK_QUEUE, EXECUTION_TASK_QUEUE, ORDERS_TASK_QUEUE, connect_temporal
from core.tracing import setup_tracing
from market import Market
from market.background import BackgroundTrader
from orders.events import OrderEvents
from orders.watcher import MarketWatcher
from processes.chain_start import refuse_unless_chain_ready
from workflows.market import BackgroundTradingWorkflow, MarketWatchWorkflow
from workflows.order import OrderWorkflow
from workflows.strategy import DcaRoundWorkflow, StrategyWorkflow

log = logging.getLogger("order_engine.worker")

# Let in-flight activities finish on SIGTERM (the contract allows 30 s in all).
GRACEFUL_SHUTDOWN = timedelta(seconds=25)
# Workflow modules imported once per process, not once per workflow run: the per-run
# re-import was an eighth of the worker's CPU per order. The cost is the sandbox's
# import-time guard (a workflow calling datetime.now() is not refused here), so the
# replay tests run every recorded path in the default, strict sandbox instead
# (tests/workflows/test_replay.py). workflows/ keeps no module-level state.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)


@dataclass(frozen=True)
class WorkerProcess:
    """What a worker process runs: its Temporal workers, over one market."""

    workers: list[Worker]
    market: Market

    @property
    def client(self) -> Client:
        return self.workers[0].client


@contextlib.asynccontextmanager
async def worker_process(settings: Settings) -> AsyncIterator[WorkerProcess]:
    """The process's one Temporal client, DB engine and Redis client, and the workers
    built on them; closed on exit."""
    client = await connect_temporal(
        settings.temporal_address,
        settings.temporal_namespace,
        settings.worker_metrics_address,
        # The tracing interceptor on the client also traces this process's workers.
        interceptors=setup_tracing(settings.tracing, "order-engine-worker"),
    )
    # A strategy's child orders are priced here too: off the loop the activities run on.
    async with built_services(settings, client, pool_size=settings.max_concurrent_activities + 2) as services:
        market, sessions, workflows = services.market, services.sessions, services.workflows
        records = OrderRecords(sessions, OrderEvents(services.redis))
        strategies = StrategyActivities(
            sessions,
            workflows.placement,
            services.quotes,
            workflows.strategies,
            workflows.order_runs,
            workflows.strategy_runs,
        )
        watcher = MarketWatcher(
            market.pools,
            market.clock,
            sessions,
            signal_trigger(client),
            budget_s=settings.watcher_tick_budget_ms / 1000,
        )
        trader = BackgroundTrader(
            market.simulation.store if market.simulation else None,
            market.clock,
            settings.sim_background_trades_per_s,
            settings.sim_seed,
        )
        yield WorkerProcess(
            build_workers(client, settings, market, records, trader, watcher, strategies), market
        )


def build_workers(
    client: Client,
    settings: Settings,
    market: Market,
    records: OrderRecords,
    trader: BackgroundTrader,
    watcher: MarketWatcher,
    strategies: StrategyActivities,
) -> list[Worker]:
    quotes = QuoteActivities(market.venues, records)
    execution = ExecutionActivities(market.chain, records)
    market_activities = MarketActivities(trader, watcher)
    limit = settings.max_concurrent_activities
    common: dict[str, Any] = {
        # The first is outermost: heartbeats start before an activity queues for a slot.
        "interceptors": [Heartbeats(), LogContext(), ActivityBudget(limit)],
        "max_concurrent_activities": limit,
        "max_concurrent_local_activities": limit,
        "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN,
    }
    return [
        Worker(
            client,
            task_queue=ORDERS_TASK_QUEUE,
            workflows=[
                OrderWorkflow,
                StrategyWorkflow,
                DcaRoundWorkflow,
                BackgroundTradingWorkflow,
                MarketWatchWorkflow,
            ],
            workflow_runner=WORKFLOW_RUNNER,
            # Run as local activities by the order workflow (see workflows/order.py).
            activities=[
                quotes.quote,
                quotes.route_order,
                quotes.plan_route,
                records.record_transition,
                execution.build_transaction,
                execution.submit_transaction,
                execution.confirm_transaction,
                execution.close_unexecuted,
                # Regular activities of strategy workflows.
                strategies.place_child,
                strategies.record_strategy,
                strategies.cancel_child,
                strategies.withdraw_child,
                strategies.create_schedule,
                strategies.pause_schedule,
                strategies.resume_schedule,
                strategies.delete_schedule,
            ],
            disable_eager_activity_execution=True,
            # A workflow task left on a dead worker's sticky queue moves to another worker this fast.
            sticky_queue_schedule_to_start_timeout=STICKY_TO_START,
            **common,
        ),
        Worker(
            client,
            task_queue=ADMISSION_TASK_QUEUE,
            activities=[execution.admit_order],
            max_task_queue_activities_per_second=settings.orders_per_minute / 60,
            **common,
        ),
        Worker(
            client,
            task_queue=EXECUTION_TASK_QUEUE,
            activities=[
                # Order workflows started before local execution still schedule these here.
                execution.build_transaction,
                execution.submit_transaction,
                execution.confirm_transaction,
                market_activities.run_background_trading,
                market_activities.watch_market,
            ],
            **common,
        ),
    ]


async def start_singletons(client: Client, settings: Settings) -> None:
    """Start the market's singleton workflows unless they already run (any worker may ask)."""
    singletons: list[tuple[Any, str]] = [(MarketWatchWorkflow.run, MARKET_WATCH_WORKFLOW_ID)]
    if settings.sim_background_trades_per_s > 0:
        singletons.append((BackgroundTradingWorkflow.run, BACKGROUND_TRADING_WORKFLOW_ID))
    for run, workflow_id in singletons:
        await client.start_workflow(
            run,
            id=workflow_id,
            task_queue=ORDERS_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )


@contextlib.asynccontextmanager
async def running_workers(settings: Settings) -> AsyncIterator[WorkerProcess]:
    """The worker process's workers polling, and the singletons started (tests use this
    in-process; `run_worker` until a stop signal)."""
    async with worker_process(settings) as process:
        async with contextlib.AsyncExitStack() as stack:
            for worker in process.workers:
                await stack.enter_async_context(worker)
            await start_singletons(process.client, settings)
            yield process


async def run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_workers(settings):
        log.info(
            "worker running: task queues %s, %s, %s; %s activities at once; %s orders/min",
            ORDERS_TASK_QUEUE,
            ADMISSION_TASK_QUEUE,
            EXECUTION_TASK_QUEUE,
            settings.max_concurrent_activities,
            settings.orders_per_minute,
        )
        await stop.wait()
        log.info("worker stopping: finishing in-flight activities")


def main() -> None:
    configure_logging()
    settings = get_settings().require_infra()
    refuse_unless_chain_ready(settings)
    asyncio.run(run_worker(settings))
    # A process that ran a Temporal worker may abort in interpreter teardown
    # (sdk-python#300); everything is shut down cleanly by now.
    os._exit(0)
