"""Order metrics read from PostgreSQL at scrape time: the source of truth, so every API
process reports the whole system, whichever worker did the work."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import TERMINAL_STATUSES

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


class Snapshot:
    """A collector that hands out metrics gathered beforehand (the query is async)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics
