"""Order metrics read from PostgreSQL at scrape time: the source of truth, so every API
process reports the whole system, whichever worker did the work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import TERMINAL_STATUSES

METRICS_TTL_S = 5.0
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


async def order_metrics(session: AsyncSession) -> list[Metric]:
    by_status = GaugeMetricFamily(
        "order_engine_orders", "Orders by status and type", labels=["status", "type"]
    )
    for status, kind, count in await session.execute(
        text("SELECT status, type, count(*) FROM orders GROUP BY status, type")
    ):
        by_status.add_metric([status, kind], count)

    terminal = [str(s) for s in TERMINAL_STATUSES]
    in_flight = GaugeMetricFamily("order_engine_orders_in_flight", "Accepted orders not yet terminal")
    in_flight.add_metric(
        [],
        await session.scalar(text("SELECT count(*) FROM orders WHERE status <> ALL(:t)"), {"t": terminal})
        or 0,
    )

    routes = CounterMetricFamily("order_engine_routes", "Executed orders by the route chosen", labels=["dex"])
    for dex, count in await session.execute(
        text("SELECT selected_dex, count(*) FROM orders WHERE status = 'CONFIRMED' GROUP BY selected_dex")
    ):
        routes.add_metric([dex or "none"], count)

    failures = CounterMetricFamily(
        "order_engine_activity_failures",
        "Failed activity attempts by error type",
        labels=["code", "activity"],
    )
    for code, activity, count in await session.execute(
        text("SELECT code, activity, count(*) FROM order_failures GROUP BY code, activity")
    ):
        failures.add_metric([code, activity], count)

    bucket_columns = ", ".join(f"count(*) FILTER (WHERE seconds <= {b})" for b in LATENCY_BUCKETS_S)
    row = (
        await session.execute(
            text(
                f"SELECT {bucket_columns}, count(*), coalesce(sum(seconds), 0) FROM ("
                "SELECT extract(epoch FROM updated_at - created_at) AS seconds FROM orders"
                " WHERE status = 'CONFIRMED' AND type = 'market') t"
            )
        )
    ).one()
    buckets = [(str(b), row[i]) for i, b in enumerate(LATENCY_BUCKETS_S)] + [
        ("+Inf", row[len(LATENCY_BUCKETS_S)])
    ]
    latency = HistogramMetricFamily(
        "order_engine_order_latency_seconds",
        "Market orders: accepted to CONFIRMED",
        buckets=buckets,
        sum_value=float(row[-1]),
    )
    return [by_status, in_flight, routes, failures, latency]


class CachedOrderMetrics:
    """The orders' metrics as Prometheus text, computed at most once per `ttl_s` in this
    process however often it is scraped (the aggregates read whole tables)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = METRICS_TTL_S) -> None:
        self._sessions, self._ttl_s = sessions, ttl_s
        self._text, self._until = b"", 0.0
        self._lock = asyncio.Lock()

    async def text(self) -> bytes:
        async with self._lock:  # concurrent scrapes wait for one computation
            if time.monotonic() >= self._until:
                registry = CollectorRegistry(auto_describe=False)
                async with self._sessions() as session:
                    registry.register(Snapshot(await order_metrics(session)))
                self._text, self._until = generate_latest(registry), time.monotonic() + self._ttl_s
            return self._text


class Snapshot:
    """A collector that hands out metrics gathered beforehand (the query is async)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics
