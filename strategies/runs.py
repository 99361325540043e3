"""A strategy's workflow and Schedule, as the domain drives them: start, pause, resume,
cancel; create, pause, resume and delete a DCA's Schedule. Reached by name
(contracts/strategies.py), so the domain does not import workflow code."""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts.strategies import (
    ACCEPTS_ORDERS_QUERY,
    ACTION_UPDATES,
    DCA_ROUND_WORKFLOW,
    STRATEGY_WORKFLOW,
    DcaRoundInput,
    StrategyInput,
    dca_schedule_id,
)
from core.domain import StrategyAction
from core.temporal import ORDERS_TASK_QUEUE, owner_priority

UPDATE_TIMEOUT = timedelta(seconds=10)


class StrategyRuns:
    def __init__(self, temporal: Client) -> None:
        self._temporal = temporal

    async def start(self, strategy: StrategyInput, summary: str) -> None:
        await self._temporal.start_workflow(
            STRATEGY_WORKFLOW,
            strategy,
            id=strategy.strategy_id,
            task_queue=ORDERS_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=summary,
            priority=owner_priority(strategy.owner),
            rpc_timeout=timedelta(seconds=5),
        )

    async def update(self, strategy_id: str, action: StrategyAction) -> bool:
        """pause, resume or cancel: True when the workflow took it."""
        accepted: bool = await self._temporal.get_workflow_handle(strategy_id).execute_update(
            ACTION_UPDATES[action], result_type=bool, rpc_timeout=UPDATE_TIMEOUT
        )
        return accepted

    async def create_schedule(self, strategy: StrategyInput) -> None:
        """One DcaRoundWorkflow per period, the first about a second from now; never two
        at once (SKIP); `orders` actions at most. Creating it again (a retried activity)
        is success."""
        schedule_id = dca_schedule_id(strategy.strategy_id)
        try:
            await self._temporal.create_schedule(
                schedule_id,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        DCA_ROUND_WORKFLOW,
                        DcaRoundInput(strategy),
                        id=schedule_id,  # the server appends the scheduled time
                        task_queue=ORDERS_TASK_QUEUE,
                        static_summary=f"DCA round of {strategy.strategy_id}",
                        priority=owner_priority(strategy.owner),
                    ),
                    # Intervals are aligned to the Unix epoch: the offset makes the first
                    # round come a second or two from now, not at the next aligned time
                    # (one second ahead could be a few milliseconds ahead: a time this
                    # request reaches the server after, and the first round an hour late).
                    spec=ScheduleSpec(
                        intervals=[
                            ScheduleIntervalSpec(
                                every=timedelta(seconds=strategy.every_s),
                                offset=timedelta(seconds=(int(time.time()) + 2) % strategy.every_s),
                            )
                        ]
                    ),
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
                    state=ScheduleState(
                        note=f"dca {strategy.amount_per_order} {strategy.token_in} → {strategy.token_out}",
                        limited_actions=strategy.orders is not None,
                        remaining_actions=strategy.orders or 0,
                    ),
                ),
            )
        except ScheduleAlreadyRunningError:
            pass

    async def pause_schedule(self, strategy_id: str, paused: bool) -> None:
        """A Schedule deleted meanwhile (the strategy ended) has nothing to pause."""
        handle = self._temporal.get_schedule_handle(dca_schedule_id(strategy_id))
        try:
            if paused:
                await handle.pause(note="paused through the API")
            else:
                await handle.unpause(note="resumed through the API")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise

    async def exists(self, strategy_id: str) -> bool:
        try:
            await self._temporal.get_workflow_handle(strategy_id).describe(rpc_timeout=timedelta(seconds=2))
        except Exception:
            return False
        return True

    async def status(self, strategy_id: str) -> WorkflowExecutionStatus | None:
        """What Temporal says of the strategy's workflow (its latest run: a DCA that
        continued as new is RUNNING); None when there is none. Other errors raise."""
        try:
            description = await self._temporal.get_workflow_handle(strategy_id).describe(
                rpc_timeout=timedelta(seconds=5)
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.status

    async def accepts_orders(self, strategy_id: str) -> bool:
        """Whether the strategy's workflow still places orders (not cancelled, not ending)."""
        accepts: bool = await self._temporal.get_workflow_handle(strategy_id).query(
            ACCEPTS_ORDERS_QUERY, result_type=bool, rpc_timeout=timedelta(seconds=5)
        )
        return accepts

    async def delete_schedule(self, strategy_id: str) -> None:
        try:
            await self._temporal.get_schedule_handle(dca_schedule_id(strategy_id)).delete()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
