"""Dependencies: the per-process clients and services built in the lifespan, handed to
routes. All async, though none awaits: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from temporalio.client import Client

from accounts.revocations import Revocations
from api.limits import WebSocketSlots
from core.errors import NotFound
from market import Market, Simulation
from orders.metrics import CachedOrderMetrics
from orders.placement import OrderPlacement
from orders.quotes import QuoteService
from orders.service import OrderService
from storage.events import EventHub
from strategies.service import StrategyService


def _state(name: str) -> Any:
    """A dependency that hands out the lifespan's `name`."""

    async def get(conn: HTTPConnection) -> Any:
        return getattr(conn.state, name)

    get.__name__ = f"get_{name}"
    return Depends(get)


TemporalDep = Annotated[Client, _state("temporal")]
RedisDep = Annotated[Redis, _state("redis")]
HubDep = Annotated[EventHub, _state("hub")]
MarketDep = Annotated[Market, _state("market")]


async def simulation_only(conn: HTTPConnection) -> Simulation:
    """The simulated market's controls; a real cluster has none (/sim/* answers 404)."""
    simulation: Simulation | None = conn.state.market.simulation
    if simulation is None:
        raise NotFound(
            "the market is a real cluster (ORDER_ENGINE_MARKET=rpc): there is no simulation to drive"
        )
    return simulation


SimulationDep = Annotated[Simulation, Depends(simulation_only)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], _state("sessions")]
OrdersDep = Annotated[OrderService, _state("orders")]
PlacementDep = Annotated[OrderPlacement, _state("placement")]
QuotesDep = Annotated[QuoteService, _state("quotes")]
WebSocketSlotsDep = Annotated[WebSocketSlots, _state("websocket_slots")]
OrderMetricsDep = Annotated[CachedOrderMetrics, _state("order_metrics")]
RevocationsDep = Annotated[Revocations, _state("revocations")]
StrategiesDep = Annotated[StrategyService, _state("strategies")]
