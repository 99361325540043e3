"""The reconciler that makes "accepted" mean "will run".

The API stores the order, then starts its workflow. If the process dies between the
two, the row has no workflow: the reconciler, in every API process, finds such rows and
starts them. Starting is idempotent (workflow id = order id), so two processes
reconciling the same row, or a reconcile racing the original request, is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders import repository
from orders.runs import OrderRuns
from storage.models import utcnow

log = logging.getLogger(__name__)

# A row older than this without a started workflow lost its request (the API died).
ORPHAN_AFTER = timedelta(seconds=15)
RECONCILE_EVERY_S = 10.0
BATCH = 100


async def reconcile_unstarted_orders(sessions: async_sessionmaker[AsyncSession], runs: OrderRuns) -> int:
    """Start the workflow of every order whose request died before starting it."""
    async with sessions() as session:
        orphans = await repository.unstarted(session, utcnow() - ORPHAN_AFTER, BATCH)
    started = 0
    for order in orphans:
        try:
            await runs.start(order)
        except Exception as error:
            log.warning("reconciler could not start %s yet: %s", order.id, error)
            continue
        async with sessions() as session:
            await repository.mark_accepted(session, order.id)
        log.info("reconciler started the workflow of %s (its request had died)", order.id)
        started += 1
    return started


async def run_reconciler(sessions: async_sessionmaker[AsyncSession], runs: OrderRuns) -> None:
    while True:
        try:
            await reconcile_unstarted_orders(sessions, runs)
        except Exception as error:  # the database may be restarting: try again next round
            log.warning("reconciler round failed: %s", error)
        await asyncio.sleep(RECONCILE_EVERY_S)
