"""The reconciler of strategies whose workflow is gone.

A strategy's workflow may be terminated (Web UI, CLI), fail, time out, or never start
(its API process died between storing the row and starting it). Nothing would then end
its row, which keeps the owner's slot, and a DCA's Schedule would keep firing rounds.
Every API process walks the running strategies, a batch per pass, and ends each whose
workflow is gone FAILED with the reason (`StrategyService.reconcile`); two processes
ending the same one is harmless (it ends once).
"""

from __future__ import annotations

import asyncio
import logging

from strategies.service import StrategyService

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 10.0


async def run_strategy_reconciler(strategies: StrategyService, every_s: float = RECONCILE_EVERY_S) -> None:
    after_id = ""
    while True:
        try:
            _, after_id = await strategies.reconcile(after_id)
        except Exception as error:  # the database may be restarting: try again next pass
            log.warning("strategy reconciler pass failed: %s", error)
        await asyncio.sleep(every_s)
