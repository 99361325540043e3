"""Liveness, readiness (Temporal, PostgreSQL, Redis) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.auth import operator_or_none
from api.deps import OrderMetricsDep, RedisDep, SessionsDep, TemporalDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 1.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(
    request: Request, temporal: TemporalDep, sessions: SessionsDep, redis: RedisDep
) -> JSONResponse:
    """Ready when Temporal, PostgreSQL and Redis all answer; 503 otherwise. Anyone learns
    only `ready` or `not_ready`; an operator's key also gets each check's outcome (a
    dependency's error names hosts, ports and users)."""

    async def postgres() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))

    async def redis_ping() -> None:
        await redis.ping()

    async def temporal_health() -> None:
        await temporal.service_client.check_health()

    async def outcome(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except Exception as error:
            return f"error: {type(error).__name__}: {error}"[:200]
        return "ok"

    # At once, each with its own timeout: a server that hangs answers 503 within a second.
    names = ("temporal", "postgres", "redis")
    results = await asyncio.gather(*(outcome(check) for check in (temporal_health, postgres, redis_ping)))
    checks: dict[str, Any] = dict(zip(names, results, strict=True))
    healthy = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if healthy else "not_ready"}
    if await operator_or_none(request, CHECK_TIMEOUT_S) is not None:
        body["checks"] = checks
    elif not healthy:
        log.warning("not ready: %s", checks)  # what the operator needs, in the log
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(order_metrics: OrderMetricsDep) -> Response:
    """Prometheus: this process's own metrics, then the orders' (from PostgreSQL, at most
    every few seconds)."""
    try:
        orders = await order_metrics.text()
    except Exception as error:  # PostgreSQL down: still serve the process metrics
        log.warning("order metrics unavailable: %s", error)
        orders = b""
    return Response(generate_latest() + orders, media_type=CONTENT_TYPE_LATEST)
