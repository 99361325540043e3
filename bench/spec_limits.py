"""The engine at the spec's limits (10 activities per worker, 100 orders a minute) with
the default simulated latencies: a burst of orders placed at once, and how the limiter
spreads them. Times come from PostgreSQL afterwards: `created_at` (accepted), the first
ROUTING event (admitted to execution), the terminal event."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from bench.engine import ORDER, SPEC_ENGINE, SPEC_SETTINGS, TERMINAL, http_client
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from bench.waiting import asyncpg_dsn

PLACE_IN_FLIGHT = 50
WINDOW_S = 60.0
SPEC_BURST, SPEC_TIMEOUT_S = 200, 200
SPEC_NEEDS_S = SPEC_TIMEOUT_S + 20
SEED_BULLMQ = {"orders/min": 50.0, "p50 s": 128.0, "p99 s": 244.0}  # the seed engine, run here
SPEC = f"spec limits: {SPEC_BURST}-order burst"


@dataclass(frozen=True)
class SpecLimitsResult:
    placed: int
    terminal: int
    confirmed: int
    executed_per_min: float  # admissions per minute, first to last
    max_in_any_60s: int  # admissions in the busiest 60 s window
    p50_s: float  # accepted → terminal
    p99_s: float
    duration_s: float
    errors: list[str]


def busiest_window(times: list[float], window_s: float = WINDOW_S) -> int:
    """The most instants within any `window_s` interval (two pointers over sorted times)."""
    ordered, best, start = sorted(times), 0, 0
    for end, instant in enumerate(ordered):
        while instant - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


async def burst_at_spec_limits(
    base_url: str, api_key: str, database_url: str, count: int, timeout_s: float
) -> SpecLimitsResult:
    started = time.monotonic()
    errors: list[str] = []
    order_ids: list[str] = []
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)
    async with http_client(base_url, api_key) as http:

        async def place() -> None:
            async with gate:
                response = await http.post("/orders", json=ORDER)
            if response.status_code == 202:
                order_ids.append(response.json()["order_id"])
            else:
                errors.append(f"POST /orders answered {response.status_code}")

        await asyncio.gather(*(place() for _ in range(count)))

    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        terminal_sql = "SELECT count(*) FROM orders WHERE id = ANY($1::text[]) AND status = ANY($2::text[])"
        while time.monotonic() - started < timeout_s:
            if await db.fetchval(terminal_sql, order_ids, list(TERMINAL)) == len(order_ids):
                break
            await asyncio.sleep(1)
        rows = await db.fetch(
            """
            SELECT o.id, o.status, o.failure_reason, extract(epoch FROM o.created_at) AS accepted,
                   (SELECT extract(epoch FROM min(e.at)) FROM order_events e
                     WHERE e.order_id = o.id AND e.status = 'ROUTING') AS admitted,
                   (SELECT extract(epoch FROM max(e.at)) FROM order_events e
                     WHERE e.order_id = o.id AND e.status = ANY($2::text[])) AS finished
              FROM orders o WHERE o.id = ANY($1::text[])
            """,
            order_ids,
            list(TERMINAL),
        )
    finally:
        await db.close()
    admitted = [float(r["admitted"]) for r in rows if r["admitted"] is not None]
    latencies = [float(r["finished"] - r["accepted"]) for r in rows if r["finished"] is not None]
    span = max(admitted) - min(admitted) if len(admitted) > 1 else 0
    # An order may fail for good under the simulated faults (say, both venues rate-limiting
    # its quotes): say which, so that a failure is no mystery.
    unconfirmed = [
        f"{r['id']} is {r['status']}: {r['failure_reason']}" for r in rows if r["status"] != "CONFIRMED"
    ]
    return SpecLimitsResult(
        placed=len(order_ids),
        terminal=len(latencies),
        confirmed=sum(1 for r in rows if r["status"] == "CONFIRMED"),
        executed_per_min=(len(admitted) - 1) / span * 60 if span else float("nan"),
        max_in_any_60s=busiest_window(admitted),
        p50_s=percentile(latencies, 50),
        p99_s=percentile(latencies, 99),
        duration_s=time.monotonic() - started,
        errors=errors[:5] + unconfirmed[:5],
    )


async def _run_spec(workbench: Workbench) -> list[Figure]:
    progress(f"spec limits: {SPEC_BURST} orders at once, 100/min, 10 activities, default latencies …")
    engine = workbench.engine
    result = await burst_at_spec_limits(
        engine.api_url, engine.operator_key(), workbench.urls.database_url, SPEC_BURST, SPEC_TIMEOUT_S
    )
    workbench.notes += [f"{SPEC}: {error}" for error in result.errors]
    progress(f"spec limits: {result.executed_per_min:.0f} orders/min, p50 {result.p50_s:.0f} s")
    seed = SEED_BULLMQ
    return [
        Figure(SPEC, "terminal", f"{result.terminal}/{result.placed}", note=f"{result.confirmed} CONFIRMED"),
        Figure(
            SPEC,
            "executed per minute, sustained",
            result.executed_per_min,
            "orders/min",
            note=f"admissions, first to last; seed BullMQ engine {seed['orders/min']:.0f}; target ≥ 90",
        ),
        Figure(
            SPEC, "most admitted in any 60 s", result.max_in_any_60s, note="target ≤ 104 (100 + burst of 4)"
        ),
        Figure(
            SPEC, "latency p50 (accepted → terminal)", result.p50_s, "s", note=f"seed {seed['p50 s']:.0f} s"
        ),
        Figure(SPEC, "latency p99", result.p99_s, "s", note=f"seed {seed['p99 s']:.0f} s"),
        Figure(SPEC, "burst duration", result.duration_s, "s"),
    ]


SPEC_SECTION = Section(
    name="spec",
    tables=(SPEC,),
    needs_s=SPEC_NEEDS_S,
    run=_run_spec,
    engine=SPEC_ENGINE,
    reserved=True,
    parameters={"spec_limits": {"burst": SPEC_BURST, "settings": SPEC_SETTINGS, "seed_bullmq": SEED_BULLMQ}},
)
