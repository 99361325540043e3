"""An order's workflow, as the domain drives it: start it, ask it to cancel, describe
it, reset it. Workflows are reached by name (contracts/orders.py), so the domain does
not import workflow code."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.orders import CANCEL_UPDATE, ORDER_WORKFLOW, OrderInput
from contracts.policies import WORKFLOW_TASK_TIMEOUT
from core.domain import OrderStatus, SwapMode
from core.formatting import format_decimal, format_time, to_base_units
from core.order_kinds import kind_of
from core.temporal import ORDER_STATUS, ORDER_TYPE, ORDERS_TASK_QUEUE, TOKEN_PAIR, owner_priority
from market.tokens import find_token
from orders.landing import request_of
from orders.quotes import ROUTE
from storage.models import Order

log = logging.getLogger(__name__)

START_TIMEOUT = timedelta(seconds=5)
CANCEL_TIMEOUT = timedelta(seconds=6)
CANCEL_TRIES = 5
MISSING = "MISSING"


class NoWorkflowTaskYet(Exception):
    """A reset needs a completed workflow task; this workflow has none yet."""


class OrderRuns:
    def __init__(self, temporal: Client) -> None:
        self._temporal = temporal

    async def start(self, order: Order, replay: int = 0) -> None:
        """Start the order's workflow; a workflow that already ran (its request died
        after starting it) counts as started, except for an operator's replay."""
        try:
            await self._start(order, replay)
        except WorkflowAlreadyStartedError:
            if replay:
                raise

    @staticmethod
    def maybe_reached(error: BaseException) -> bool:
        """Whether a failed start may have reached Temporal all the same: a timeout (the
        server may have accepted it), not a refused connection."""
        if isinstance(error, RPCError):
            return error.status in (
                RPCStatusCode.DEADLINE_EXCEEDED,
                RPCStatusCode.CANCELLED,
                RPCStatusCode.UNKNOWN,
            )
        return isinstance(error, TimeoutError)

    async def exists(self, order_id: str) -> bool:
        try:
            await self._temporal.get_workflow_handle(order_id).describe(rpc_timeout=timedelta(seconds=2))
        except Exception:
            return False
        return True

    async def state(self, order_id: str) -> str:
        """What Temporal says of the workflow: RUNNING, COMPLETED, FAILED, …, or MISSING."""
        try:
            description = await self._temporal.get_workflow_handle(order_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return MISSING
            raise
        status = description.status
        return status.name if isinstance(status, WorkflowExecutionStatus) else "UNKNOWN"

    async def cancel(self, order_id: str) -> bool:
        """The cancel update: True when the workflow accepted it (before execution).

        Asked again when it did not get through: an update sent while an operator resets
        the workflow can be lost with the old run, and Temporal refuses one for the
        moment (FAILED_PRECONDITION, "unexpected workflow task failure") after a
        workflow task failed. The same update id is answered once."""
        update_id = f"cancel-{uuid.uuid4().hex}"
        for attempt in range(1, CANCEL_TRIES + 1):
            try:
                accepted: bool = await self._temporal.get_workflow_handle(order_id).execute_update(
                    CANCEL_UPDATE, id=update_id, rpc_timeout=CANCEL_TIMEOUT, result_type=bool
                )
                return accepted
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                if attempt >= 2:
                    raise
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND or attempt == CANCEL_TRIES:
                    raise
                log.warning(
                    "cancel of %s refused for now (%s: %s); asking again", order_id, error.status, error
                )
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def reset_to_last_workflow_task(self, order_id: str) -> None:
        handle = self._temporal.get_workflow_handle(order_id)
        description = await handle.describe()
        history = await handle.fetch_history()
        completed = [
            e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ]
        if not completed:
            raise NoWorkflowTaskYet(order_id)
        await self._temporal.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=self._temporal.namespace,
                workflow_execution=WorkflowExecution(workflow_id=order_id, run_id=description.run_id),
                reason="operator replay",
                workflow_task_finish_event_id=max(completed),
                request_id=str(uuid.uuid4()),
            )
        )

    async def history_summary(self, order_id: str) -> str:
        """A line about the workflow's history: size, activities, failures, last event."""
        from collections import Counter

        history = await self._temporal.get_workflow_handle(order_id).fetch_history()
        kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events)
        last = (
            EventType.Name(history.events[-1].event_type).removeprefix("EVENT_TYPE_")
            if history.events
            else "-"
        )
        return (
            f"{len(history.events)} events, {kinds['ACTIVITY_TASK_SCHEDULED']} activities"
            f" ({kinds['ACTIVITY_TASK_FAILED']} failed, {kinds['ACTIVITY_TASK_TIMED_OUT']} timed out),"
            f" {kinds['MARKER_RECORDED']} local activities, {kinds['WORKFLOW_TASK_FAILED']} workflow task failures;"
            f" last: {last}"
        )

    async def _start(self, order: Order, replay: int) -> None:
        token_in, token_out = find_token(order.token_in), find_token(order.token_out)
        if token_in is None or (token_out is None and kind_of(order.type).listed_token_out):
            raise LookupError(f"order {order.id} names a token this process does not know")
        await self._temporal.start_workflow(
            ORDER_WORKFLOW,
            order_input(order, token_in.decimals, token_out.decimals if token_out else None, replay),
            id=order.id,
            task_queue=ORDERS_TASK_QUEUE,
            # Starting twice (a retried request, the reconciler) is success, never a second run.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # Only an operator's replay may run a closed order's workflow again.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if replay
            else WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(ORDER_TYPE, order.type),
                    SearchAttributePair(TOKEN_PAIR, f"{order.token_in}/{order.token_out}"),
                    SearchAttributePair(ORDER_STATUS, OrderStatus.PENDING),
                ]
            ),
            static_summary=f"{order.type} {format_decimal(order.amount)} {order.token_in} → {order.token_out}",
            static_details=workflow_details(order),
            # A workflow task stuck on a worker that died (say, mid local activity) is
            # retried elsewhere after this; long local activities heartbeat the task
            # (contracts/policies.py: it bounds an order's recovery from a worker kill).
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            # Task Queue Fairness: the workflow's tasks and its activities (admission
            # above all, where orders queue behind the system-wide rate) are dispatched
            # round-robin across owners, so one owner's backlog cannot hold others back.
            priority=owner_priority(order.owner),
            rpc_timeout=START_TIMEOUT,
        )


def order_input(order: Order, decimals_in: int, decimals_out: int | None, replay: int = 0) -> OrderInput:
    exact_out = order.swap_mode is SwapMode.EXACT_OUT and order.max_amount_in is not None
    return OrderInput(
        order_id=order.id,
        order_type=order.type,
        token_in=order.token_in,
        token_out=order.token_out,
        # Exact-out: the most it may spend (reserved); it receives amount_out exactly.
        amount_in=to_base_units(order.max_amount_in if exact_out else order.amount, decimals_in),  # type: ignore[arg-type]
        swap_mode=order.swap_mode,
        amount_out=to_base_units(order.amount, decimals_out)
        if exact_out and decimals_out is not None
        else None,
        max_hops=order.max_hops,
        dexes=order.dexes,
        quoted_route=ROUTE.validate_python(order.quote["route"]) if order.quote else None,
        trigger_price=format_decimal(order.trigger_price),
        trailing_bps=order.trailing_bps,
        slippage_bps=order.slippage_bps,
        decimals_in=decimals_in,
        decimals_out=decimals_out,
        limit_price=format_decimal(order.limit_price),
        expires_at=order.expires_at.timestamp() if order.expires_at else None,
        replay=replay,
        landing=request_of(order.landing),
    )


def workflow_details(order: Order) -> str:
    """What the Web UI shows under the summary (markdown)."""
    lines = [
        f"**{order.type} order** `{order.id}`",
        f"- pair: {order.token_in}/{order.token_out}",
        f"- amount in: {format_decimal(order.amount)} {order.token_in}",
        f"- slippage: {order.slippage_bps} bps",
    ]
    if order.limit_price is not None:
        lines.append(
            f"- limit price: {format_decimal(order.limit_price)} {order.token_out} per {order.token_in}"
        )
    if order.expires_at is not None:
        lines.append(f"- expires: {format_time(order.expires_at)}")
    if order.landing is not None:
        landing = order.landing
        lines.append(f"- priority fee: {landing['priority_fee']}, simulate: {landing['simulate']}")
        if landing.get("tip_lamports"):
            lines.append(f"- tip: {landing['tip_lamports']} lamports (private path)")
    return "\n".join(lines)
