"""Operator actions on orders, shared by the CLI (`order-engine orders …`) and the API:
find stuck orders, re-drive (replay) one, describe its workflow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.errors import DomainError, OrderNotFound
from api.order_starts import start_order_workflow
from core.domain import TERMINAL_STATUSES, OrderStatus
from storage.models import Order, OrderEvent, utcnow


class NothingToReplay(DomainError):
    status, code, title = 409, "nothing_to_replay", "Nothing to replay"


@dataclass(frozen=True)
class StuckOrder:
    order_id: str
    status: str
    type: str
    age: timedelta
    workflow: str  # what Temporal says: RUNNING, COMPLETED, FAILED, …, or MISSING


async def workflow_state(temporal: Client, order_id: str) -> str:
    try:
        description = await temporal.get_workflow_handle(order_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return "MISSING"
        raise
    status = description.status
    return status.name if isinstance(status, WorkflowExecutionStatus) else "UNKNOWN"


async def stuck_orders(
    sessions: async_sessionmaker[AsyncSession], temporal: Client, older_than: timedelta
) -> list[StuckOrder]:
    """Non-terminal orders last updated longer ago than `older_than`, with their workflow's state."""
    now = utcnow()
    async with sessions() as session:
        rows = await session.execute(
            select(Order)
            .where(
                col(Order.status).not_in([str(s) for s in TERMINAL_STATUSES]),
                col(Order.status) != OrderStatus.WAITING,  # waiting is what they should do
                col(Order.updated_at) < now - older_than,
            )
            .order_by(col(Order.updated_at))
            .limit(500)
        )
        orders = list(rows.scalars())
    return [
        StuckOrder(o.id, o.status, o.type, now - o.updated_at, await workflow_state(temporal, o.id))
        for o in orders
    ]


async def replay_order(sessions: async_sessionmaker[AsyncSession], temporal: Client, order_id: str) -> str:
    """Re-drive a stuck or failed order without executing it twice on chain (the chain
    refuses a second execution of an order). Returns what was done."""
    async with sessions() as session:
        order = await session.get(Order, order_id)
        replays = await session.scalar(
            select(func.count())
            .select_from(OrderEvent)
            .where(col(OrderEvent.order_id) == order_id, col(OrderEvent.event_key).like("replay%"))
        )
    if order is None:
        raise OrderNotFound(f"no order {order_id}")
    if order.status in (OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        raise NothingToReplay(f"{order_id} is {order.status}: there is nothing to re-drive")
    state = await workflow_state(temporal, order_id)
    if state == "MISSING":
        await start_order_workflow(temporal, order)
        return "started its missing workflow"
    if state == "RUNNING":
        await _reset_to_last_workflow_task(temporal, order_id)
        return "reset its workflow to the last completed workflow task"
    if order.status != OrderStatus.FAILED and state == "COMPLETED":
        raise NothingToReplay(f"{order_id}'s workflow has completed; the order is {order.status}")
    await start_order_workflow(temporal, order, replay=(replays or 0) + 1)
    return "started a new run of its workflow"


async def _reset_to_last_workflow_task(temporal: Client, order_id: str) -> None:
    handle = temporal.get_workflow_handle(order_id)
    description = await handle.describe()
    history = await handle.fetch_history()
    completed = [
        e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    if not completed:  # nothing has run yet: there is no point to reset to
        raise NothingToReplay(f"{order_id}'s workflow has not run its first step yet; a worker will start it")
    last_task = max(completed)
    await temporal.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=temporal.namespace,
            workflow_execution=WorkflowExecution(workflow_id=order_id, run_id=description.run_id),
            reason="operator replay",
            workflow_task_finish_event_id=last_task,
            request_id=str(uuid.uuid4()),
        )
    )


def age_text(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `2h`."""
    units = {"s": 1, "m": 60, "h": 3600}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 2h")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])
