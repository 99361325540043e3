"""The FastAPI application: lifespan (one Temporal client, DB engine, Redis client and
event hub per process) and routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from api import health, market, orders, sim, ws
from api.errors import install_error_handlers
from api.order_starts import run_reconciler
from core.settings import Settings, get_settings
from core.temporal import connect_temporal
from market.simulation import SimulatedMarket, SimulationConfig
from storage.database import create_engine, create_sessionmaker
from storage.events import ActiveOrders, EventHub


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = (settings or get_settings()).require_infra()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        redis = Redis.from_url(settings.redis_url)
        active = ActiveOrders(redis)
        # After Redis comes back (possibly empty), rebuild active:order:* from PostgreSQL.
        hub = EventHub(redis, on_reconnect=lambda: active.sync_from_database(sessions))
        hub.start()
        app.state.hub = hub  # for the server's shutdown: streams close with 1001 first
        reconciler = asyncio.create_task(run_reconciler(sessions, temporal), name="reconciler")
        market_ = SimulatedMarket(sessions, SimulationConfig(seed=settings.sim_seed))
        await market_.ensure_genesis()
        await active.sync_from_database(sessions)
        try:
            yield {
                "settings": settings,
                "temporal": temporal,
                "sessions": sessions,
                "redis": redis,
                "hub": hub,
                "market": market_,
            }
        finally:
            reconciler.cancel()
            await hub.stop()
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Order Engine",
        version="0.1.0",
        summary="Durable order execution for Solana DEX swaps, on Temporal.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(orders.router)
    app.include_router(ws.router)
    app.include_router(market.router)
    app.include_router(sim.router)
    app.include_router(health.router)
    return app
