"""The FastAPI application: a lifespan that connects the process's one Temporal client,
builds the shared services on it (composition/), and adds the API's own: the event hub,
the reconcilers, the limits; and the routers."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Depends, FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts.revocations import Revocations
from api import health, market, orders, sim, strategies, ws
from api.auth import authenticate
from api.client_address import ForwardedClient
from api.limits import BodySizeLimit, FailedAuthLimit, WebSocketSlots
from api.problems import install_error_handlers
from composition import built_services
from core.settings import Settings, get_settings
from core.temporal import connect_temporal
from core.tracing import instrument_app, setup_tracing
from orders.events import EVENT_STREAM, ActiveOrders
from orders.metrics import CachedOrderMetrics
from orders.reconciler import run_reconciler
from storage.database import when_reachable
from storage.events import EventHub
from strategies.reconciler import run_strategy_reconciler

access_log = structlog.get_logger("api.access")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = (settings or get_settings()).require_infra()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        temporal = await connect_temporal(
            settings.temporal_address, settings.temporal_namespace, interceptors=tracing
        )
        async with built_services(settings, temporal) as services:
            sessions, workflows = services.sessions, services.workflows
            active = ActiveOrders(services.redis)
            # After Redis comes back (possibly empty), rebuild active:order:* from PostgreSQL.
            hub = EventHub(
                services.redis, EVENT_STREAM, on_reconnect=lambda: active.sync_from_database(sessions)
            )
            hub.start()
            app.state.hub = hub  # for the server's shutdown: streams close with 1001 first
            revocations = Revocations(services.keys)
            await when_reachable(lambda: active.sync_from_database(sessions), "syncing the active orders")
            loops = [
                asyncio.create_task(run_reconciler(sessions, workflows.order_runs), name="reconciler"),
                asyncio.create_task(revocations.run(), name="revocations"),
                asyncio.create_task(services.quotes.run_purge(), name="quote-purge"),
                asyncio.create_task(
                    run_strategy_reconciler(workflows.strategies), name="strategy-reconciler"
                ),
            ]
            try:
                yield {
                    "settings": settings,
                    "temporal": temporal,
                    "sessions": sessions,
                    "redis": services.redis,
                    "hub": hub,
                    "market": services.market,
                    "keys": services.keys,
                    "revocations": revocations,
                    "orders": workflows.orders,
                    "placement": workflows.placement,
                    "strategies": workflows.strategies,
                    "quotes": services.quotes,
                    "websocket_slots": WebSocketSlots(settings.websockets_per_key),
                    "failed_auth": FailedAuthLimit(settings.failed_auth_per_minute),
                    "order_metrics": CachedOrderMetrics(sessions, settings.metrics_cache_s),
                }
            finally:
                for loop in loops:
                    loop.cancel()
                await hub.stop()

    tracing = setup_tracing(settings.tracing, "order-engine-api")
    app = FastAPI(
        title="Order Engine",
        version="0.1.0",
        summary="Durable order execution for Solana DEX swaps, on Temporal.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext)
    if settings.trusted_proxy_networks:  # outermost: everything after sees the real client
        app.add_middleware(ForwardedClient, trusted=settings.trusted_proxy_networks)
    if tracing:
        instrument_app(app)

    # Every endpoint but /health/* and /metrics needs a key; the WebSocket checks its own.
    authenticated = [Depends(authenticate)]
    app.include_router(orders.router, dependencies=authenticated)
    app.include_router(market.router, dependencies=authenticated)
    app.include_router(sim.router, dependencies=authenticated)
    app.include_router(strategies.router, dependencies=authenticated)
    app.include_router(ws.router)
    app.include_router(health.router)
    return app


class RequestContext:
    """Every log line of a request carries its id (X-Request-ID, or a new one), and the
    request ends with one access-log line. Plain ASGI: Starlette's BaseHTTPMiddleware
    runs each request in a task of its own behind memory streams, a cost we paid on
    every request for nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        # A caller's id is echoed and logged only when it is short and plain.
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                access_log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
