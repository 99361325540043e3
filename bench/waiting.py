"""Waiting limit orders: many orders parked far from their limit, what they cost while idle,
and what one market-watcher tick costs with all of them in the database.

A limit order waits in its workflow on a durable timer and a signal; nothing polls. The
market watcher (market/watcher.py) reads the waiting orders and the pools once per tick and
signals only the workflows whose condition holds, so the cost of waiting should be one
watcher query and one pass per tick, linear in the number of waiting orders, and zero
Temporal events and zero quotes per order over time.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.service import RPCError

from bench.cpu import CpuMeter
from bench.engine import ENGINE, TERMINAL, http_client
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from contracts.orders import Trigger
from market.clock import MarketClock
from market.pool_store import PoolStore
from orders import repository
from orders.watcher import TICK_S, MarketWatcher
from storage.database import create_engine, create_sessionmaker

# Far above any SOL/USDC price: the watcher's price bound skips these orders before routing.
LIMIT_ORDER = {
    "type": "limit",
    "token_in": "SOL",
    "token_out": "USDC",
    "amount": "0.1",
    "limit_price": "100000",
    "expires_in_s": 3600,
}
PLACE_IN_FLIGHT = 50
# One httpx pool with many requests in flight costs the generator CPU (see bench/engine.py).
PLACE_CLIENTS = 10
POLL_S = 0.5
TERMINATE_REASON = "bench: left over from an earlier section"
QUIET_CORES = 0.1  # the engine and the servers together, idle


@dataclass(frozen=True)
class Placement:
    order_ids: list[str]
    errors: list[str]
    elapsed_s: float

    @property
    def per_s(self) -> float:
        return len(self.order_ids) / self.elapsed_s if self.elapsed_s else float("nan")


async def place_limit_orders(base_url: str, api_key: str, count: int) -> Placement:
    """POST /orders `count` times, PLACE_IN_FLIGHT at once, spread over PLACE_CLIENTS clients."""
    order_ids: list[str] = []
    errors: list[str] = []
    remaining = iter(range(count))

    async def sender(http: httpx.AsyncClient) -> None:
        for _ in remaining:  # shared: each sender takes the next order until none is left
            try:
                response = await http.post("/orders", json=LIMIT_ORDER)
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code == 202:
                order_ids.append(response.json()["order_id"])
            else:
                errors.append(f"POST /orders answered {response.status_code}: {response.text[:200]}")

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(http_client(base_url, api_key, max_connections=None))
            for _ in range(PLACE_CLIENTS)
        ]
        started = time.perf_counter()
        await asyncio.gather(*(sender(clients[i % PLACE_CLIENTS]) for i in range(PLACE_IN_FLIGHT)))
        elapsed = time.perf_counter() - started
    return Placement(order_ids, errors, elapsed)


async def terminate_unfinished(client: Client, db: asyncpg.Connection) -> int:
    """Terminate the workflows of the orders still executing (neither terminal nor WAITING):
    what earlier sections left behind, which no figure waits for. Their rows stay as they
    are. Returns how many were terminated (the others finished meanwhile)."""
    rows = await db.fetch("SELECT id FROM orders WHERE status <> ALL($1::text[])", [*TERMINAL, "WAITING"])
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)

    async def terminate(order_id: str) -> bool:
        async with gate:
            try:
                await client.get_workflow_handle(order_id).terminate(reason=TERMINATE_REASON)
            except RPCError:  # completed meanwhile
                return False
            return True

    return sum(await asyncio.gather(*(terminate(row["id"]) for row in rows)))


async def settle(meter: Callable[[], CpuMeter], timeout_s: float) -> tuple[bool, float]:
    """Until the metered processes (this one aside) use less than QUIET_CORES together over
    one second; (quiet, seconds waited)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        window = meter()
        window.start()
        await asyncio.sleep(1)
        cores = window.stop()
        if sum(used for name, used in cores.items() if window.pids[name] != os.getpid()) < QUIET_CORES:
            return True, time.monotonic() - started
    return False, time.monotonic() - started


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("+asyncpg", "", 1)


async def wait_until(
    check: Callable[[], Awaitable[int]], done: Callable[[int], bool], timeout_s: float
) -> tuple[int, float]:
    """Poll `check()` until `done(value)` or the timeout; (last value, seconds waited)."""
    started = time.monotonic()
    while True:
        value = await check()
        waited = time.monotonic() - started
        if done(value) or waited >= timeout_s:
            return value, waited
        await asyncio.sleep(POLL_S)


async def waiting_among(db: asyncpg.Connection, order_ids: list[str]) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM orders WHERE status = 'WAITING' AND id = ANY($1::text[])", order_ids
    )
    return count


@dataclass(frozen=True)
class Footprint:
    """What `order_ids` left in PostgreSQL: any quote or route shows up here."""

    events: int
    routing_events: int  # a ROUTING event precedes every quote
    quoted_orders: int  # orders whose row holds quotes
    failures: int

    @classmethod
    async def read(cls, db: asyncpg.Connection, order_ids: list[str]) -> Footprint:
        row = await db.fetchrow(
            """
            SELECT
              (SELECT count(*) FROM order_events WHERE order_id = ANY($1::text[])) AS events,
              (SELECT count(*) FROM order_events
                 WHERE order_id = ANY($1::text[]) AND status = 'ROUTING') AS routing_events,
              (SELECT count(*) FROM orders  -- no quotes is SQL NULL or JSON null
                 WHERE id = ANY($1::text[]) AND quotes <> 'null'::jsonb) AS quoted_orders,
              (SELECT count(*) FROM order_failures WHERE order_id = ANY($1::text[])) AS failures
            """,
            order_ids,
        )
        assert row is not None
        return cls(**dict(row))


async def history_length(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)


@dataclass(frozen=True)
class TickTimes:
    ms: list[float]  # whole ticks
    query_ms: list[float]  # the tick's first step alone: reading the waiting orders
    signals: int  # signals the ticks would have sent (none: every order is far from its limit)

    @property
    def p50_ms(self) -> float:
        return percentile(self.ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.ms, 99)

    @property
    def query_p50_ms(self) -> float:
        return percentile(self.query_ms, 50)


async def time_watcher_ticks(database_url: str, ticks: int) -> TickTimes:
    """`MarketWatcher.tick()` built as the worker builds it, against the same database, with a
    no-op signal: the watcher's own cost per tick (query, pools, price bound, routes)."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)

    async def no_signal(order_id: str, trigger: Trigger, parent_id: str | None) -> bool:
        return True

    watcher = MarketWatcher(PoolStore(sessions), MarketClock(), sessions, no_signal)
    times: list[float] = []
    query_times: list[float] = []
    signals = 0
    try:
        await watcher.tick()  # warm-up: connections, first query plan
        for _ in range(ticks):
            started = time.perf_counter()
            signals += await watcher.tick()
            times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with sessions() as session:  # where the time goes: the query, or the pass over the orders
                await repository.waiting(session)
            query_times.append((time.perf_counter() - started) * 1000)
    finally:
        await engine.dispose()
    return TickTimes(times, query_times, signals)


def rss_mb(pid: int) -> float:
    """Resident memory of one process (Linux), NaN where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass(frozen=True)
class WaitingResult:
    count: int
    terminated: int  # orders earlier sections left executing, terminated first
    settled_s: float  # then the engine was quiet after this long (or not: `settled`)
    settled: bool
    placement: Placement
    all_waiting_s: float  # end of placement → all placed orders WAITING
    waiting: int
    cores_none_waiting: dict[str, float]
    cores_waiting: dict[str, float]
    rss_mb_none_waiting: dict[str, float]
    rss_mb_waiting: dict[str, float]
    history_before: int  # events of one waiting order's workflow, start of the idle window
    history_after: int  # … and its end
    footprint_before: Footprint
    footprint_after: Footprint
    ticks: TickTimes


@dataclass(frozen=True)
class WaitingPlan:
    count: int
    idle_s: float  # the measured idle window with `count` orders waiting
    baseline_s: float  # the same, with none waiting
    ticks: int
    settle_timeout_s: float
    waiting_timeout_s: float


async def run_waiting(
    plan: WaitingPlan,
    base_url: str,
    api_key: str,
    database_url: str,
    temporal_address: str,
    meter: Callable[[], CpuMeter],
) -> WaitingResult:
    """A quiet engine, its idle baseline, then `plan.count` limit orders placed and all WAITING,
    the idle window (CPU, history length, footprint) and the watcher's ticks."""
    client = await Client.connect(temporal_address)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        terminated = await terminate_unfinished(client, db)
        settled, settled_s = await settle(meter, plan.settle_timeout_s)
        progress(f"waiting: {terminated} terminated, quiet after {settled_s:.0f}s; idle baseline …")
        cores_none, rss_none = await idle_window(meter(), plan.baseline_s)

        progress(f"waiting: placing {plan.count} limit orders far from their limit …")
        placement = await place_limit_orders(base_url, api_key, plan.count)
        order_ids = placement.order_ids
        if not order_ids:
            raise RuntimeError(f"no limit order was accepted: {placement.errors[:3]}")
        waiting, all_waiting_s = await wait_until(
            lambda: waiting_among(db, order_ids), lambda n: n == len(order_ids), plan.waiting_timeout_s
        )

        progress(f"waiting: {waiting} WAITING; {plan.idle_s:.0f}s idle, then {plan.ticks} watcher ticks …")
        history_before = await history_length(client, order_ids[0])
        footprint_before = await Footprint.read(db, order_ids)
        cores, rss = await idle_window(meter(), plan.idle_s)
        history_after = await history_length(client, order_ids[0])
        footprint_after = await Footprint.read(db, order_ids)
    finally:
        await db.close()

    ticks = await time_watcher_ticks(database_url, plan.ticks)
    return WaitingResult(
        count=plan.count,
        terminated=terminated,
        settled_s=settled_s,
        settled=settled,
        placement=placement,
        all_waiting_s=all_waiting_s,
        waiting=waiting,
        cores_none_waiting=cores_none,
        cores_waiting=cores,
        rss_mb_none_waiting=rss_none,
        rss_mb_waiting=rss,
        history_before=history_before,
        history_after=history_after,
        footprint_before=footprint_before,
        footprint_after=footprint_after,
        ticks=ticks,
    )


async def idle_window(meter: CpuMeter, seconds: float) -> tuple[dict[str, float], dict[str, float]]:
    """Cores used by the metered processes over `seconds` of doing nothing here, and their RSS."""
    meter.start()
    await asyncio.sleep(seconds)
    return meter.stop(), {name: rss_mb(pid) for name, pid in meter.pids.items()}


# Measured at WAITING_ORDERS, extrapolated (linearly) to WAITING_AT_SCALE.
WAITING_ORDERS, WAITING_AT_SCALE = 2000, 10_000
WAITING_PLAN = WaitingPlan(
    count=WAITING_ORDERS,
    idle_s=20,
    baseline_s=10,
    ticks=20,
    settle_timeout_s=20,  # after terminating what the earlier sections left executing
    waiting_timeout_s=90,
)
WAITING_NEEDS_S = 130  # settling, baseline, placing, until all WAITING, idle window, ticks, stopping
WAITING = f"{WAITING_ORDERS} waiting limit orders"


async def _run_waiting_section(workbench: Workbench) -> list[Figure]:
    plan = WAITING_PLAN
    progress("waiting: terminating what earlier sections left executing …")
    engine = workbench.engine
    engine.check_alive()
    result = await run_waiting(
        plan,
        engine.api_url,
        engine.operator_key(),
        workbench.urls.database_url,
        workbench.urls.temporal_address,
        workbench.meter,
    )
    engine.check_alive()
    workbench.waiting_order_ids = result.placement.order_ids
    scale = WAITING_AT_SCALE / result.count
    workbench.notes += [
        f"{WAITING}: first terminated in Temporal the {result.terminated} orders earlier sections left "
        "executing (no figure waits for them, executing them would take minutes; their rows stay "
        "non-terminal), then "
        + (
            f"the engine was quiet after {result.settled_s:.0f}s"
            if result.settled
            else f"the engine was NOT quiet after {result.settled_s:.0f}s: the cpu figures include that work"
        ),
        f"{WAITING}: each limit order is {LIMIT_ORDER}; 'none waiting' is the same idle window "
        f"({plan.baseline_s:.0f}s) before they were placed",
        f"{WAITING}: rows marked 'at {WAITING_AT_SCALE:,}' are EXTRAPOLATED, not measured: linear in "
        f"the number of waiting orders (×{scale:g})",
        *(f"{WAITING}: {error}" for error in result.placement.errors[:5]),
    ]
    if result.footprint_after != result.footprint_before:
        workbench.notes.append(
            f"{WAITING}: their rows changed while idle: {result.footprint_before} → {result.footprint_after}"
        )
    progress(
        f"waiting: {len(result.placement.order_ids)} placed at {result.placement.per_s:.0f}/s, "
        f"watcher tick p50 {result.ticks.p50_ms:.1f} ms"
    )
    return waiting_figures(result, plan)


def waiting_figures(result: WaitingResult, plan: WaitingPlan) -> list[Figure]:
    n, placement, ticks, footprint = result.count, result.placement, result.ticks, result.footprint_after
    scale = WAITING_AT_SCALE / n
    at_scale = f"at {WAITING_AT_SCALE:,} (extrapolated)"
    tick_ms = TICK_S * 1000
    none, busy = result.cores_none_waiting, result.cores_waiting
    figures = [
        Figure(WAITING, "placed (202)", f"{len(placement.order_ids)}/{n}"),
        Figure(
            WAITING,
            "placement rate",
            placement.per_s,
            "orders/s",
            note=f"POST /orders, {PLACE_IN_FLIGHT} in flight over {PLACE_CLIENTS} clients",
        ),
        Figure(WAITING, "last 202 → all WAITING", result.all_waiting_s, "s"),
        Figure(WAITING, "WAITING", f"{result.waiting}/{len(placement.order_ids)}"),
    ]
    figures += [
        Figure(
            WAITING,
            f"cpu: {name}",
            used,
            "cores",
            note=f"idle {plan.idle_s:.0f}s; {none[name]:.3f} with none waiting" if name in none else "",
        )
        for name, used in busy.items()
    ]
    figures += [
        Figure(
            WAITING,
            f"rss: {name}",
            result.rss_mb_waiting[name],
            "MB",
            note=f"{result.rss_mb_none_waiting[name]:.0f} with none waiting",
        )
        for name in ("worker", "temporal")
        if name in result.rss_mb_waiting
    ]
    figures += [
        Figure(
            WAITING,
            "history events, one waiting order",
            result.history_after,
            note=f"{result.history_before} at the start of the {plan.idle_s:.0f}s idle window",
        ),
        Figure(
            WAITING,
            "order events per waiting order",
            footprint.events / n,
            note=f"PENDING + WAITING; {result.footprint_before.events} → {footprint.events} in all while idle",
        ),
        Figure(
            WAITING,
            "quotes for waiting orders",
            footprint.quoted_orders + footprint.routing_events,
            note=f"orders with quotes + ROUTING events; {footprint.failures} failures",
        ),
        Figure(
            WAITING,
            "watcher tick p50",
            ticks.p50_ms,
            "ms",
            note=f"MarketWatcher.tick() here, {n} waiting, no-op signal, {len(ticks.ms)} ticks",
        ),
        Figure(WAITING, "watcher tick p99", ticks.p99_ms, "ms"),
        Figure(
            WAITING,
            "watcher: reading the waiting orders p50",
            ticks.query_p50_ms,
            "ms",
            note="the SELECT of the waiting orders alone",
        ),
        Figure(WAITING, "watcher signals sent", ticks.signals, note="none due: all far from their limit"),
        Figure(
            WAITING,
            "watcher share of one core",
            ticks.p50_ms / tick_ms,
            "cores",
            note=f"tick p50 / {tick_ms:.0f} ms between ticks",
        ),
        Figure(WAITING, f"watcher tick p50 {at_scale}", ticks.p50_ms * scale, "ms", note=f"×{scale:g}"),
        Figure(WAITING, f"watcher tick p99 {at_scale}", ticks.p99_ms * scale, "ms", note=f"×{scale:g}"),
        Figure(
            WAITING,
            f"watcher share of one core {at_scale}",
            ticks.p50_ms * scale / tick_ms,
            "cores",
            note=f"×{scale:g}",
        ),
    ]
    figures += [
        Figure(
            WAITING,
            f"cpu: {name} {at_scale}",
            busy[name] + max(busy[name] - none[name], 0) * (scale - 1),
            "cores",
            note=f"none waiting + (measured − none) × {scale:g}; measured if below none",
        )
        for name in ("worker", "temporal", "postgres")
        if name in busy and name in none
    ]
    return figures


WAITING_SECTION = Section(
    name="waiting",
    tables=(WAITING,),
    needs_s=WAITING_NEEDS_S,
    run=_run_waiting_section,
    engine=ENGINE,
    parameters={
        "waiting": {
            "order": LIMIT_ORDER,
            "count": WAITING_ORDERS,
            "extrapolated_to": WAITING_AT_SCALE,
            "place_in_flight": PLACE_IN_FLIGHT,
            "place_clients": PLACE_CLIENTS,
            "idle_s": WAITING_PLAN.idle_s,
            "baseline_s": WAITING_PLAN.baseline_s,
            "watcher_ticks": WAITING_PLAN.ticks,
            "watcher_tick_s": TICK_S,
        }
    },
)
