"""Dependencies: the per-process clients built in the lifespan, handed to routes.

All async, though none awaits: FastAPI runs a plain `def` dependency in its thread pool,
a thread hop per dependency per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from temporalio.client import Client

from api.limits import OrderRateLimiter, WebSocketSlots
from core.settings import Settings
from market.simulation import SimulatedMarket
from storage.events import EventHub


async def _settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.state.settings
    return settings


async def _temporal(conn: HTTPConnection) -> Client:
    client: Client = conn.state.temporal
    return client


async def _redis(conn: HTTPConnection) -> Redis:
    redis: Redis = conn.state.redis
    return redis


async def _hub(conn: HTTPConnection) -> EventHub:
    hub: EventHub = conn.state.hub
    return hub


async def _market(conn: HTTPConnection) -> SimulatedMarket:
    market: SimulatedMarket = conn.state.market
    return market


async def _sessions(conn: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = conn.state.sessions
    return sessions


async def _order_rate(conn: HTTPConnection) -> OrderRateLimiter:
    limiter: OrderRateLimiter = conn.state.order_rate
    return limiter


async def _websocket_slots(conn: HTTPConnection) -> WebSocketSlots:
    slots: WebSocketSlots = conn.state.websocket_slots
    return slots


async def _session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with (await _sessions(conn))() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]
RedisDep = Annotated[Redis, Depends(_redis)]
HubDep = Annotated[EventHub, Depends(_hub)]
MarketDep = Annotated[SimulatedMarket, Depends(_market)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
OrderRateDep = Annotated[OrderRateLimiter, Depends(_order_rate)]
WebSocketSlotsDep = Annotated[WebSocketSlots, Depends(_websocket_slots)]
