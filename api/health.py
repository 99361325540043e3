"""Liveness, readiness (Temporal, PostgreSQL, Redis) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from api.deps import RedisDep, SessionsDep, TemporalDep
from orders.metrics import Snapshot, order_metrics

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(temporal: TemporalDep, sessions: SessionsDep, redis: RedisDep) -> JSONResponse:
    """Ready when Temporal, PostgreSQL and Redis all answer; 503 otherwise."""

    async def postgres() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))

    async def redis_ping() -> None:
        await redis.ping()

    async def temporal_health() -> None:
        await temporal.service_client.check_health()

    checks: dict[str, Any] = {}
    for name, check in (("temporal", temporal_health), ("postgres", postgres), ("redis", redis_ping)):
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
            checks[name] = "ok"
        except Exception as error:
            checks[name] = f"error: {type(error).__name__}: {error}"[:200]
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
        media_type="application/json" if healthy else "application/problem+json",
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(sessions: SessionsDep) -> Response:
    """Prometheus: this process's own metrics, then the orders' (from PostgreSQL)."""
    orders = CollectorRegistry(auto_describe=False)
    try:
        async with sessions() as session:
            orders.register(Snapshot(await order_metrics(session)))
    except Exception as error:  # PostgreSQL down: still serve the process metrics
        log.warning("order metrics unavailable: %s", error)
    return Response(generate_latest() + generate_latest(orders), media_type=CONTENT_TYPE_LATEST)
