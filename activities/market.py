"""The market's own long-running activities: other traders moving the pools, and the
watcher that wakes waiting orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.market import BackgroundTradingRequest, WatchRequest
from contracts.orders import TRIGGER_SIGNAL, Trigger
from contracts.strategies import LEG_TRIGGERED_SIGNAL, LegTriggered
from market.background import BackgroundTrader
from orders.watcher import MarketWatcher


class MarketActivities:
    def __init__(self, trader: BackgroundTrader, watcher: MarketWatcher) -> None:
        self._trader = trader
        self._watcher = watcher

    @activity.defn
    async def run_background_trading(self, request: BackgroundTradingRequest) -> int:
        """Trade for a while at ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S (of this worker)."""
        # A stopping worker ends the round early; the next round runs on another worker.
        return await self._trader.run(
            request.duration_s, heartbeat=activity.heartbeat, stopping=activity.is_worker_shutdown
        )

    @activity.defn
    async def watch_market(self, request: WatchRequest) -> int:
        """Signal the waiting orders whose condition holds, for a while."""
        return await self._watcher.run(
            request.duration_s, heartbeat=activity.heartbeat, stopping=activity.is_worker_shutdown
        )


def signal_trigger(client: Client) -> Callable[[str, Trigger, str | None], Awaitable[bool]]:
    async def send(order_id: str, trigger: Trigger, parent_id: str | None) -> bool:
        try:
            if parent_id is not None:
                # A strategy's leg: the strategy decides which of its legs fires.
                await client.get_workflow_handle(parent_id).signal(
                    LEG_TRIGGERED_SIGNAL, LegTriggered(order_id)
                )
            else:
                await client.get_workflow_handle(order_id).signal(TRIGGER_SIGNAL, trigger)
        except RPCError as error:  # finished meanwhile (cancelled, expired): nothing to wake
            activity.logger.info("could not signal %s: %s", order_id, error)
            return False
        return True

    return send
