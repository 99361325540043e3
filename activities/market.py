"""The simulated market's own activity: other traders moving the pools."""

from __future__ import annotations

from temporalio import activity

from market.background import BackgroundTrader
from workflows.inputs import BackgroundTradingRequest


class MarketActivities:
    def __init__(self, trader: BackgroundTrader) -> None:
        self._trader = trader

    @activity.defn
    async def run_background_trading(self, request: BackgroundTradingRequest) -> int:
        """Trade for a while at ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S (of this worker)."""
        # A stopping worker ends the round early; the next round runs on another worker.
        return await self._trader.run(
            request.duration_s, heartbeat=activity.heartbeat, stopping=activity.is_worker_shutdown
        )
