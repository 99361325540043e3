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
LANDING_BUCKETS_SLOTS = (0, 1, 2, 3, 5, 10, 20, 50, 150)


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
    return [by_status, in_flight, routes, failures, latency, *await landing_metrics(session)]


# How a landing's fee level is named: a tip, "auto"/"none", the level asked, or "exact".
FEE_LEVEL_SQL = """CASE WHEN (landing->>'tip_lamports') IS NOT NULL THEN 'tipped'
    WHEN jsonb_typeof(landing->'priority_fee') = 'string' THEN landing->>'priority_fee'
    WHEN landing->'priority_fee' ? 'level' THEN landing->'priority_fee'->>'level'
    ELSE 'exact' END"""


async def landing_metrics(session: AsyncSession) -> list[Metric]:
    """Fees paid (landed and landed-but-failed transactions), landing time in slots by
    fee level, and sandwiched orders."""
    fees = CounterMetricFamily(
        "order_engine_fees_paid_lamports",
        "Fees paid by landed transactions (by kind), and by those that landed and failed",
        labels=["kind"],
    )
    paid = (
        await session.execute(
            text(
                "SELECT coalesce(sum((landing->'fees'->>'network_lamports')::bigint), 0),"
                " coalesce(sum((landing->'fees'->>'priority_lamports')::bigint), 0),"
                " coalesce(sum((landing->'fees'->>'tip_lamports')::bigint), 0)"
                " FROM chain_transactions WHERE landing IS NOT NULL"
            )
        )
    ).one()
    for kind, lamports in zip(("network", "priority", "tip"), paid, strict=True):
        fees.add_metric([kind], lamports)
    fees.add_metric(
        ["failed_transactions"],
        await session.scalar(text("SELECT coalesce(sum(fee_lamports), 0) FROM failed_transactions")) or 0,
    )

    counts: dict[str, dict[int, int]] = {}
    for level, slots, n in await session.execute(
        text(
            f"SELECT {FEE_LEVEL_SQL}, (execution->>'landed_slot')::bigint - (execution->>'sent_slot')::bigint,"
            " count(*) FROM orders WHERE execution IS NOT NULL AND landing IS NOT NULL GROUP BY 1, 2"
        )
    ):
        counts.setdefault(level, {})[int(slots)] = n
    landing = HistogramMetricFamily(
        "order_engine_landing_slots", "Slots from sending to landing, by fee level", labels=["fee_level"]
    )
    for level, by_slots in sorted(counts.items()):
        buckets = [(str(b), sum(n for s, n in by_slots.items() if s <= b)) for b in LANDING_BUCKETS_SLOTS]
        buckets.append(("+Inf", sum(by_slots.values())))
        landing.add_metric([level], buckets, sum_value=float(sum(s * n for s, n in by_slots.items())))

    sandwiched = CounterMetricFamily(
        "order_engine_sandwiched_orders", "Confirmed orders a searcher sandwiched"
    )
    sandwiched.add_metric(
        [],
        await session.scalar(text("SELECT count(*) FROM orders WHERE (execution->>'sandwiched')::boolean"))
        or 0,
    )
    return [fees, landing, sandwiched]


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
