"""Starting an order's workflow, and the reconciler that makes "accepted" mean "will run".

The API stores the order, then starts its workflow. If the process dies between the
two, the row has no workflow: the reconciler, in every API process, finds such rows and
starts them. Starting is idempotent (workflow id = order id), so two processes
reconciling the same row, or a reconcile racing the original request, is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.domain import OrderStatus
from core.temporal import ORDER_STATUS, ORDER_TYPE, ORDERS_TASK_QUEUE, TOKEN_PAIR
from market.tokens import find_token, to_base_units
from storage import orders as store
from storage.models import Order, utcnow
from workflows.inputs import OrderInput
from workflows.order import OrderWorkflow

log = logging.getLogger(__name__)

# A row older than this without a started workflow lost its request (the API died).
ORPHAN_AFTER = timedelta(seconds=15)
RECONCILE_EVERY_S = 10.0
START_TIMEOUT = timedelta(seconds=5)
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=4)


async def start_order_workflow(temporal: Client, order: Order, replay: int = 0) -> None:
    """Start the order's workflow; a workflow that already ran (its request died after
    starting it) counts as started."""
    try:
        await _start(temporal, order, replay)
    except WorkflowAlreadyStartedError:
        if replay:
            raise


async def _start(temporal: Client, order: Order, replay: int) -> None:
    token_in, token_out = find_token(order.token_in), find_token(order.token_out)
    if token_in is None or (token_out is None and order.type != "sniper"):
        raise LookupError(f"order {order.id} names a token this process does not know")
    await temporal.start_workflow(
        OrderWorkflow.run,
        OrderInput(
            order_id=order.id,
            order_type=order.type,
            token_in=order.token_in,
            token_out=order.token_out,
            amount_in=to_base_units(order.amount, token_in.decimals),
            slippage_bps=order.slippage_bps,
            decimals_in=token_in.decimals,
            decimals_out=token_out.decimals if token_out else None,
            limit_price=store.format_decimal(order.limit_price),
            expires_at=order.expires_at.timestamp() if order.expires_at else None,
            replay=replay,
        ),
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
        static_summary=f"{order.type} {store.format_decimal(order.amount)} {order.token_in} → {order.token_out}",
        static_details=_details(order),
        # A workflow task stuck on a worker that died (say, mid local activity) is
        # retried elsewhere after this; long local activities heartbeat the task.
        task_timeout=WORKFLOW_TASK_TIMEOUT,
        rpc_timeout=START_TIMEOUT,
    )


def _details(order: Order) -> str:
    """What the Web UI shows under the summary (markdown)."""
    lines = [
        f"**{order.type} order** `{order.id}`",
        f"- pair: {order.token_in}/{order.token_out}",
        f"- amount in: {store.format_decimal(order.amount)} {order.token_in}",
        f"- slippage: {order.slippage_bps} bps",
    ]
    if order.limit_price is not None:
        lines.append(
            f"- limit price: {store.format_decimal(order.limit_price)} {order.token_out} per {order.token_in}"
        )
    if order.expires_at is not None:
        lines.append(f"- expires: {store.format_time(order.expires_at)}")
    return "\n".join(lines)


async def reconcile_unstarted_orders(sessions: async_sessionmaker[AsyncSession], temporal: Client) -> int:
    """Start the workflow of every order whose request died before starting it."""
    cutoff = utcnow() - ORPHAN_AFTER
    async with sessions() as session:
        rows = await session.execute(
            select(Order)
            .where(col(Order.accepted_at).is_(None), col(Order.created_at) < cutoff)
            .order_by(col(Order.created_at))
            .limit(100)
        )
        orphans = list(rows.scalars())
    started = 0
    for order in orphans:
        try:
            await start_order_workflow(temporal, order)
        except Exception as error:
            log.warning("reconciler could not start %s yet: %s", order.id, error)
            continue
        async with sessions() as session:
            await store.mark_accepted(session, order.id)
        log.info("reconciler started the workflow of %s (its request had died)", order.id)
        started += 1
    return started


async def run_reconciler(sessions: async_sessionmaker[AsyncSession], temporal: Client) -> None:
    while True:
        try:
            await reconcile_unstarted_orders(sessions, temporal)
        except Exception as error:  # the database may be restarting: try again next round
            log.warning("reconciler round failed: %s", error)
        await asyncio.sleep(RECONCILE_EVERY_S)
