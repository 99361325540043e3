"""`python -m bench` (`make bench`): everything on one fresh embedded stack, loopback only.

Runs the router timing, then starts Temporal + PostgreSQL + Redis in a temp dir, the floor
workflow, the engine's worker and API as real processes, and POST /orders under load;
prints a table and writes bench/results/<UTC timestamp>.json and latest.json.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.engine import ORDER, OrdersResult, post_under_load, run_orders
from bench.floor import STEPS, FloorResult, floor_worker, run_floor
from bench.processes import ENGINE_SETTINGS, EngineProcesses
from bench.report import machine_facts, progress, table, write_json
from bench.routing import time_router
from bench.stats import Figure, ratio
from cli import run_migrations
from devstack import EmbeddedStack, InfraUrls

BUDGET_S = 240  # the whole run, infra start and teardown included
IN_FLIGHT = 30
FLOOR_WARMUP, ENGINE_WARMUP = 20, 5
SEQUENTIAL_RUNS, CONCURRENT_RUNS = 30, 300  # the floor and the engine alike
ROUTER_AMOUNTS_SOL, ROUTER_CALLS = [1, 10, 100, 1000], 500
LOAD_RATE_PER_S, LOAD_SECONDS = 100, 10
LOAD_NEEDS_S = LOAD_SECONDS + 50  # the load itself, its stragglers, and stopping everything

# Table sections, in print order. Each engine figure is compared with the floor run the same way.
FLOOR_SEQ, FLOOR_CONC = "floor 1 at a time", f"floor {IN_FLIGHT} in flight"
ENGINE_SEQ, ENGINE_CONC = "engine 1 at a time", f"engine {IN_FLIGHT} in flight"
ROUTER, LOAD = "router", "POST /orders load"
SECTIONS = [FLOOR_SEQ, FLOOR_CONC, ENGINE_SEQ, ENGINE_CONC, ROUTER, LOAD]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C even when started with SIGINT ignored (as `cmd &` does), and SIGTERM alike:
    # either way the finally below stops everything this run started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    started_at, started = datetime.now(UTC), time.monotonic()
    # Another process busy on this machine (a test run, say) skews every figure: record it.
    load_at_start = os.getloadavg()[0]
    figures: list[Figure] = []
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="order-engine-bench-"))
    stack = EmbeddedStack(tmp / "infra", ui=False, persistent=False)
    engine: EngineProcesses | None = None
    code = 0
    try:
        progress(f"router: {ROUTER_CALLS} best_route calls per amount …")
        figures += router_figures()
        progress("starting embedded Temporal, PostgreSQL, Redis …")
        urls = stack.start()
        run_migrations(urls.database_url)
        engine = EngineProcesses(urls, tmp / "engine")
        asyncio.run(run_sections(urls, stack, engine, figures, notes, started))
    except KeyboardInterrupt:
        progress("interrupted; stopping what was started")
        code = 130
    except Exception:
        traceback.print_exc()
        if engine is not None:
            for role in engine.children:
                print(engine.log_tail(role), file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if engine is not None:
            engine.stop()
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    duration = time.monotonic() - started
    figures.sort(key=lambda f: SECTIONS.index(f.section))
    if figures:
        print(table(figures))
        print("\n".join(f"note: {note}" for note in notes))
    if code == 0:
        machine = {**machine_facts(), "loadavg_1m_at_start": load_at_start}
        meta = {"machine": machine, "parameters": parameters(), "notes": notes}
        stamped, _ = write_json(started_at, duration, figures, meta)
        progress(f"done in {duration:.0f}s; wrote {stamped} and latest.json")
    return code


async def run_sections(
    urls: InfraUrls,
    stack: EmbeddedStack,
    engine: EngineProcesses,
    figures: list[Figure],
    notes: list[str],
    started: float,
) -> None:
    servers = {"temporal": stack.temporal.pid, "postgres": stack.postgres.pid, "redis": stack.redis.pid}
    server_pids = {name: pid for name, pid in servers.items() if pid is not None}

    progress(f"floor: workflows of {STEPS} no-op activities, {SEQUENTIAL_RUNS} one at a time …")
    async with floor_worker(urls.temporal_address) as client:
        await run_floor(client, FLOOR_WARMUP, FLOOR_WARMUP)
        floor_seq = await run_floor(client, SEQUENTIAL_RUNS, 1)
        progress(f"floor: {CONCURRENT_RUNS} with {IN_FLIGHT} in flight …")
        meter = CpuMeter({"temporal": server_pids["temporal"], "bench (client + worker)": os.getpid()})
        meter.start()
        floor_conc = await run_floor(client, CONCURRENT_RUNS, IN_FLIGHT)
        cores = meter.stop()
    figures += floor_figures(FLOOR_SEQ, floor_seq, throughput=False)
    figures += floor_figures(FLOOR_CONC, floor_conc, throughput=True) + cpu_figures(FLOOR_CONC, cores)
    progress(f"floor: p50 {floor_seq.p50_ms:.0f} ms alone, {floor_conc.per_s:.1f} workflows/s")

    progress("engine: starting the worker and the API …")
    engine.start()
    await asyncio.to_thread(engine.wait_ready)
    warmup = await run_orders(engine.base_url, ENGINE_WARMUP, 1)
    if warmup.confirmed == 0:
        raise RuntimeError(f"no warm-up order was confirmed: {warmup.errors[:3]}")

    progress(f"engine: {SEQUENTIAL_RUNS} orders one at a time …")
    engine_seq = await run_orders(engine.base_url, SEQUENTIAL_RUNS, 1)
    figures += order_figures(ENGINE_SEQ, engine_seq, floor_seq, throughput=False)
    notes += [f"{ENGINE_SEQ}: {error}" for error in engine_seq.errors[:5]]

    progress(f"engine: {CONCURRENT_RUNS} orders, {IN_FLIGHT} in flight …")
    meter = CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})
    meter.start()
    engine_conc = await run_orders(engine.base_url, CONCURRENT_RUNS, IN_FLIGHT)
    figures += order_figures(ENGINE_CONC, engine_conc, floor_conc, throughput=True)
    figures += cpu_figures(ENGINE_CONC, meter.stop())
    notes += [f"{ENGINE_CONC}: {error}" for error in engine_conc.errors[:5]]
    progress(f"engine: p50 {engine_seq.p50_ms:.0f} ms alone, {engine_conc.per_s:.1f} orders/s")

    elapsed = time.monotonic() - started
    if elapsed + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{LOAD}: skipped, {elapsed:.0f}s of the {BUDGET_S}s budget already used")
        return
    progress(f"load: POST /orders at {LOAD_RATE_PER_S}/s for {LOAD_SECONDS}s (open loop) …")
    engine.check_alive()
    meter = CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})
    meter.start()
    load = await post_under_load(engine.base_url, LOAD_RATE_PER_S, LOAD_SECONDS)
    figures += [
        Figure(LOAD, "202 latency p50", load.p50_ms, "ms", note="worker running meanwhile"),
        Figure(LOAD, "202 latency p99", load.p99_ms, "ms"),
        Figure(LOAD, "accepted (202)", f"{load.accepted}/{load.sent}"),
        Figure(LOAD, "achieved send rate", load.achieved_per_s, "req/s", note=f"target {LOAD_RATE_PER_S}"),
        Figure(LOAD, "max send lag", load.max_send_lag_ms, "ms", note="worst lateness of a send"),
        *cpu_figures(LOAD, meter.stop()),
    ]
    notes.append(
        f"{LOAD}: the worker keeps executing the accepted orders meanwhile; latency counts from "
        "each request's scheduled send instant, so a late generator does not hide slowness"
    )
    notes += [f"{LOAD}: {error}" for error in load.errors[:5]]
    progress(f"load: p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms")


def floor_figures(section: str, floor: FloorResult, *, throughput: bool) -> list[Figure]:
    figures = [
        Figure(section, "latency p50 (start → result)", floor.p50_ms, "ms"),
        Figure(section, "latency p99", floor.p99_ms, "ms"),
    ]
    if throughput:
        figures.append(Figure(section, "throughput", floor.per_s, "workflows/s"))
    return [*figures, Figure(section, "failed", floor.failed)]


def order_figures(
    section: str, result: OrdersResult, floor: FloorResult, *, throughput: bool
) -> list[Figure]:
    figures = [
        Figure(
            section,
            "latency p50 (POST → CONFIRMED frame)",
            result.p50_ms,
            "ms",
            ratio(result.p50_ms, floor.p50_ms),
        ),
        Figure(section, "latency p99", result.p99_ms, "ms", ratio(result.p99_ms, floor.p99_ms)),
    ]
    if throughput:
        figures.append(
            Figure(section, "throughput", result.per_s, "orders/s", ratio(result.per_s, floor.per_s))
        )
    return [
        *figures,
        Figure(section, "WS delivery p50", result.delivery_p50_ms, "ms", note="event `at` → frame received"),
        Figure(section, "WS delivery p99", result.delivery_p99_ms, "ms"),
        Figure(section, "failed", result.failed),
    ]


def cpu_figures(section: str, cores: dict[str, float]) -> list[Figure]:
    return [Figure(section, f"cpu: {name}", used, "cores") for name, used in cores.items()]


def router_figures() -> list[Figure]:
    figures = []
    for timing in time_router(ROUTER_AMOUNTS_SOL, ROUTER_CALLS):
        amount = f"{timing.amount_sol} SOL"
        figures += [
            Figure(
                ROUTER, f"{amount} p50, from pools", timing.from_pools.p50_us, "µs", note="pool math included"
            ),
            Figure(ROUTER, f"{amount} p99, from pools", timing.from_pools.p99_us, "µs"),
            Figure(
                ROUTER,
                f"{amount} p50, from quoted curves",
                timing.from_curves.p50_us,
                "µs",
                note="as route_order",
            ),
            Figure(ROUTER, f"{amount} p99, from quoted curves", timing.from_curves.p99_us, "µs"),
            Figure(ROUTER, f"{amount} route", timing.selected_dex, note=timing.legs),
        ]
    return figures


def parameters() -> dict[str, Any]:
    return {
        "in_flight": IN_FLIGHT,
        "sequential_runs": SEQUENTIAL_RUNS,
        "concurrent_runs": CONCURRENT_RUNS,
        "floor": {"warmup": FLOOR_WARMUP, "activities": STEPS},
        "engine": {
            "warmup": ENGINE_WARMUP,
            "order": ORDER,
            "settings": ENGINE_SETTINGS,
        },
        "router": {
            "amounts_sol": ROUTER_AMOUNTS_SOL,
            "calls": ROUTER_CALLS,
            "pair": "SOL/USDC",
        },
        "load": {"rate_per_s": LOAD_RATE_PER_S, "seconds": LOAD_SECONDS},
    }


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A process that ran a Temporal worker may abort at interpreter exit (sdk-python#300).
    os._exit(exit_code)
