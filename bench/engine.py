"""Orders through the real API: POST /orders, then the WebSocket until the terminal event."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from websockets.asyncio.client import connect

from bench.cpu import cpu_figures
from bench.floor import CONCURRENT_RUNS, FLOOR_CONC, FLOOR_SEQ, IN_FLIGHT, SEQUENTIAL_RUNS
from bench.report import progress
from bench.sections import EngineSpec, Section, Workbench
from bench.stats import Figure, percentile, ratio

ORDER = {"token_in": "SOL", "token_out": "USDC", "amount": "0.1"}
TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"}
ORDER_TIMEOUT_S = 60
# httpcore scans every connection of its pool on each request start and end, so one pool
# holding hundreds of open-loop requests costs the generator seconds of CPU; shards keep it small.
LOAD_CLIENT_SHARDS = 32
ENGINE_WARMUP = 5
# Simulated latencies 0, no faults, no background trading, limits lifted.
ENGINE_SETTINGS = {
    "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "0",
    "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "0",
    "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
    "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "0",
    "ORDER_ENGINE_ORDERS_PER_MINUTE": "1000000",
    "ORDER_ENGINE_MAX_CONCURRENT_ACTIVITIES": "100",
    "ORDER_ENGINE_MAX_RUNNING_STRATEGIES_PER_OWNER": "1000",
    # Creating a strategy counts against the key's order rate: the 100 TWAPs of the
    # conditional section come from one key.
    "ORDER_ENGINE_ORDERS_PER_MINUTE_PER_KEY": "1000000",
    "ORDER_ENGINE_LOG_LEVEL": "WARNING",
}
ENGINE = EngineSpec("engine", ENGINE_SETTINGS)
# At the spec's limits: default latencies and limits (10 activities, 100 orders/min).
SPEC_SETTINGS = {"ORDER_ENGINE_LOG_LEVEL": "WARNING"}
SPEC_ENGINE = EngineSpec("engine-spec", SPEC_SETTINGS)
ENGINE_SEQ, ENGINE_CONC = "engine 1 at a time", f"engine {IN_FLIGHT} in flight"
LOAD_RATE_PER_S, LOAD_SECONDS = 200, 30
LOAD_NEEDS_S = LOAD_SECONDS + 40  # the load itself, its stragglers, and stopping everything
LOAD = f"POST /orders at {LOAD_RATE_PER_S}/s, worker paused"


@dataclass(frozen=True)
class Outcome:
    """One order: `latency_s` from sending POST /orders to the CONFIRMED frame, or `error`."""

    latency_s: float | None = None
    error: str | None = None
    # Server-stamped `at` of the terminal event → its frame read here; None when it was replayed.
    delivery_s: float | None = None


@dataclass(frozen=True)
class OrdersResult:
    p50_ms: float
    p99_ms: float
    per_s: float
    confirmed: int
    failed: int
    errors: list[str] = field(default_factory=list)
    delivery_p50_ms: float = float("nan")
    delivery_p99_ms: float = float("nan")


def http_client(base_url: str, api_key: str, max_connections: int | None = 200) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
        trust_env=False,  # loopback: never through a proxy
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


async def place_and_watch(http: httpx.AsyncClient, ws_base: str) -> Outcome:
    started = time.perf_counter()
    response = await http.post("/orders", json=ORDER)
    if response.status_code != 202:
        return Outcome(error=f"POST /orders answered {response.status_code}")
    order_id = response.json()["order_id"]
    snapshot_seq = 0
    auth = {"Authorization": http.headers["authorization"]}
    async with connect(
        f"{ws_base}/ws/orders?orderId={order_id}&after_seq=0", proxy=None, additional_headers=auth
    ) as ws:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "SNAPSHOT":
                snapshot_seq = frame["seq"]
            elif frame["type"] == "EVENT" and frame["status"] in TERMINAL:
                latency, received = time.perf_counter() - started, time.time()
                if frame["status"] != "CONFIRMED":
                    reason = frame.get("data", {}).get("reason")
                    return Outcome(error=f"{order_id} ended {frame['status']}: {reason}")
                live = frame["seq"] > snapshot_seq  # replayed events are not a delivery
                at = datetime.fromisoformat(frame["at"]).timestamp()
                return Outcome(latency_s=latency, delivery_s=received - at if live else None)
            elif frame["type"] == "ERROR":
                return Outcome(error=f"{order_id}: {frame.get('code')} {frame.get('message')}")
    return Outcome(error=f"{order_id}: WebSocket closed before a terminal event")


async def _bounded(http: httpx.AsyncClient, ws_base: str) -> Outcome:
    try:
        return await asyncio.wait_for(place_and_watch(http, ws_base), ORDER_TIMEOUT_S)
    except TimeoutError:
        return Outcome(error=f"no terminal event within {ORDER_TIMEOUT_S}s")
    except Exception as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")


async def run_orders(base_url: str, api_key: str, count: int, in_flight: int) -> OrdersResult:
    """`count` orders, at most `in_flight` at once (1 = one at a time)."""
    ws_base = base_url.replace("http://", "ws://", 1)
    gate = asyncio.Semaphore(in_flight)

    async def gated(http: httpx.AsyncClient) -> Outcome:
        async with gate:
            return await _bounded(http, ws_base)

    async with http_client(base_url, api_key) as http:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(gated(http) for _ in range(count)))
        elapsed = time.perf_counter() - started

    latencies = [o.latency_s * 1000 for o in outcomes if o.latency_s is not None]
    deliveries = [o.delivery_s * 1000 for o in outcomes if o.delivery_s is not None]
    errors = [o.error for o in outcomes if o.error is not None]
    return OrdersResult(
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        per_s=len(latencies) / elapsed,
        confirmed=len(latencies),
        failed=len(errors),
        errors=errors,
        delivery_p50_ms=percentile(deliveries, 50),
        delivery_p99_ms=percentile(deliveries, 99),
    )


@dataclass(frozen=True)
class LoadResult:
    p50_ms: float
    p99_ms: float
    sent: int
    accepted: int
    errors: list[str]
    achieved_per_s: float
    max_send_lag_ms: float


async def post_under_load(base_url: str, api_key: str, rate_per_s: float, duration_s: float) -> LoadResult:
    """Open loop: POST /orders every 1/rate s whatever the answers do. A request's latency
    counts from its scheduled instant, so a generator falling behind cannot hide slowness."""
    count = round(rate_per_s * duration_s)
    results: list[tuple[float, int | str]] = []

    async def post(http: httpx.AsyncClient, scheduled: float) -> None:
        try:
            status: int | str = (await http.post("/orders", json=ORDER)).status_code
        except httpx.HTTPError as exc:
            status = f"{type(exc).__name__}: {exc}"
        results.append((time.perf_counter() - scheduled, status))

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(http_client(base_url, api_key, max_connections=None))
            for _ in range(LOAD_CLIENT_SHARDS)
        ]
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        max_lag = 0.0
        for i in range(count):
            scheduled = start + i / rate_per_s
            await asyncio.sleep(max(scheduled - time.perf_counter(), 0))
            max_lag = max(max_lag, time.perf_counter() - scheduled)
            tasks.append(asyncio.create_task(post(clients[i % LOAD_CLIENT_SHARDS], scheduled)))
        send_window = time.perf_counter() - start
        await asyncio.gather(*tasks)

    latencies = [latency * 1000 for latency, status in results if status == 202]
    errors = [str(status) for _, status in results if status != 202]
    return LoadResult(
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        sent=count,
        accepted=len(latencies),
        errors=errors,
        achieved_per_s=count / send_window if send_window else float("nan"),
        max_send_lag_ms=max_lag * 1000,
    )


async def _run_engine(workbench: Workbench) -> list[Figure]:
    engine = workbench.engine
    warmup = await run_orders(engine.api_url, engine.operator_key(), ENGINE_WARMUP, 1)
    if warmup.confirmed == 0:
        raise RuntimeError(f"no warm-up order was confirmed: {warmup.errors[:3]}")

    progress(f"engine: {SEQUENTIAL_RUNS} orders one at a time …")
    engine_seq = await run_orders(engine.api_url, engine.operator_key(), SEQUENTIAL_RUNS, 1)
    figures = order_figures(ENGINE_SEQ, engine_seq, workbench, FLOOR_SEQ, throughput=False)
    workbench.notes += [f"{ENGINE_SEQ}: {error}" for error in engine_seq.errors[:5]]

    progress(f"engine: {CONCURRENT_RUNS} orders, {IN_FLIGHT} in flight …")
    meter = workbench.meter()
    meter.start()
    engine_conc = await run_orders(engine.api_url, engine.operator_key(), CONCURRENT_RUNS, IN_FLIGHT)
    figures += order_figures(ENGINE_CONC, engine_conc, workbench, FLOOR_CONC, throughput=True)
    figures += cpu_figures(ENGINE_CONC, meter.stop(), engine_conc.per_s, "order")
    workbench.notes += [f"{ENGINE_CONC}: {error}" for error in engine_conc.errors[:5]]
    progress(f"engine: p50 {engine_seq.p50_ms:.0f} ms alone, {engine_conc.per_s:.1f} orders/s")
    return figures


def order_figures(
    section: str, result: OrdersResult, workbench: Workbench, floor: str, *, throughput: bool
) -> list[Figure]:
    """Each figure beside the same figure of the floor's table `floor` (none if it did not run)."""
    figures = [
        Figure(
            section,
            "latency p50 (POST → CONFIRMED frame)",
            result.p50_ms,
            "ms",
            ratio(result.p50_ms, workbench.value(floor, "latency p50")),
        ),
        Figure(
            section,
            "latency p99",
            result.p99_ms,
            "ms",
            ratio(result.p99_ms, workbench.value(floor, "latency p99")),
        ),
    ]
    if throughput:
        figures.append(
            Figure(
                section,
                "throughput",
                result.per_s,
                "orders/s",
                ratio(result.per_s, workbench.value(floor, "throughput")),
            )
        )
    return [
        *figures,
        Figure(section, "WS delivery p50", result.delivery_p50_ms, "ms", note="event `at` → frame received"),
        Figure(section, "WS delivery p99", result.delivery_p99_ms, "ms"),
        Figure(section, "failed", result.failed),
    ]


async def _run_load(workbench: Workbench) -> list[Figure]:
    engine = workbench.engine
    engine.first("worker").pause()  # accepted orders pile up; nothing executes
    progress(f"load: POST /orders at {LOAD_RATE_PER_S}/s for {LOAD_SECONDS}s (open loop) …")
    engine.check_alive()
    meter = workbench.meter()
    meter.start()
    started = time.perf_counter()
    load = await post_under_load(engine.api_url, engine.operator_key(), LOAD_RATE_PER_S, LOAD_SECONDS)
    # Per request sent: one the client gave up on (timed out) was still served.
    sent_per_s = load.sent / (time.perf_counter() - started)
    workbench.notes.append(
        f"{LOAD}: the worker is paused (SIGSTOP), so accepted orders pile up unexecuted; latency "
        "counts from each request's scheduled send instant, so a late generator does not hide slowness"
    )
    workbench.notes += [f"{LOAD}: {error}" for error in load.errors[:5]]
    progress(f"load: p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms")
    return [
        Figure(LOAD, "202 latency p50", load.p50_ms, "ms", note="one API process; the worker SIGSTOPped"),
        Figure(LOAD, "202 latency p99", load.p99_ms, "ms"),
        Figure(LOAD, "accepted (202)", f"{load.accepted}/{load.sent}"),
        Figure(LOAD, "achieved send rate", load.achieved_per_s, "req/s", note=f"target {LOAD_RATE_PER_S}"),
        Figure(LOAD, "max send lag", load.max_send_lag_ms, "ms", note="worst lateness of a send"),
        *cpu_figures(LOAD, meter.stop(), sent_per_s, "request"),
    ]


ENGINE_SECTION = Section(
    name="engine",
    tables=(ENGINE_SEQ, ENGINE_CONC),
    needs_s=90,
    run=_run_engine,
    engine=ENGINE,
    parameters={"engine": {"warmup": ENGINE_WARMUP, "order": ORDER, "settings": ENGINE_SETTINGS}},
)
# On the spec's engine, after the burst; its worker stays paused, so the engine goes after it.
LOAD_SECTION = Section(
    name="load",
    tables=(LOAD,),
    needs_s=LOAD_NEEDS_S,
    run=_run_load,
    engine=SPEC_ENGINE,
    reserved=True,
    spoils_engine=True,
    parameters={"load": {"rate_per_s": LOAD_RATE_PER_S, "seconds": LOAD_SECONDS, "worker": "paused"}},
)
