"""`python -m bench` (`make bench`): everything on one fresh embedded stack, loopback only.

Runs the router timing, then starts Temporal + PostgreSQL + Redis in a temp dir: the floor
workflow; the engine's worker and API as real processes with latencies 0 and limits lifted
(one at a time, 30 in flight, 1 000 subscribed WebSockets, thousands of waiting limit
orders, 5 000 idle WebSockets); then the engine again at the spec's limits with default
latencies (a burst of orders), and POST /orders under load with its worker paused. Prints
a table and writes bench/results/<UTC timestamp>.json and latest.json.
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

from bench.conditional import run_conditional, run_protective
from bench.cpu import CpuMeter
from bench.engine import ORDER, OrdersResult, post_under_load, run_orders
from bench.floor import STEPS, FloorResult, floor_worker, run_floor
from bench.landing import CONGESTIONS, LEVELS, PER_LEVEL, measure_landing
from bench.quotes import time_planner, time_quotes
from bench.report import machine_facts, progress, table, write_json
from bench.routing import time_router
from bench.sharing import conservation, fair_shares, watcher_under_load
from bench.spec_limits import SpecLimitsResult, burst_at_spec_limits
from bench.stats import Figure, percentile, ratio
from bench.streaming import (
    SUBSCRIBERS_PER_ORDER,
    DeliveryResult,
    delivery_one_at_a_time,
    delivery_with_subscribers,
    idle_websockets,
)
from bench.waiting import (
    LIMIT_ORDER,
    PLACE_CLIENTS,
    PLACE_IN_FLIGHT,
    WaitingPlan,
    WaitingResult,
    run_waiting,
)
from core.settings import SETTINGS_NAMES, Settings
from devstack import EmbeddedStack, InfraUrls
from devstack.engine import EngineProcesses
from migrations import run_migrations
from orders.watcher import TICK_S

BUDGET_S = 840  # the whole run, infra start and teardown included (make bench: < 15 min)
IN_FLIGHT = 30
FLOOR_WARMUP, ENGINE_WARMUP = 20, 5
SEQUENTIAL_RUNS, CONCURRENT_RUNS = 30, 300  # the floor and the engine alike
ROUTER_AMOUNTS_SOL, ROUTER_CALLS = [1, 10, 100, 1000], 500
LOAD_RATE_PER_S, LOAD_SECONDS = 200, 30
LOAD_NEEDS_S = LOAD_SECONDS + 40  # the load itself, its stragglers, and stopping everything
STREAM_ORDERS = 50  # × SUBSCRIBERS_PER_ORDER subscribed WebSockets
ONE_AT_A_TIME_NEEDS_S = 60  # STREAM_ORDERS sniper orders placed, subscribed, run in turn
IDLE_WEBSOCKETS = 5000
# At the spec's limits: default latencies and limits (10 activities, 100 orders/min).
SPEC_BURST, SPEC_TIMEOUT_S = 200, 200
SPEC_NEEDS_S = SPEC_TIMEOUT_S + 20
SPEC_SETTINGS = {"ORDER_ENGINE_LOG_LEVEL": "WARNING"}
# Simulated latencies 0, no faults, no background trading, limits lifted.
ENGINE_SETTINGS = {
    "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "0",
    "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "0",
    "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
    "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "0",
    "ORDER_ENGINE_ORDERS_PER_MINUTE": "1000000",
    "ORDER_ENGINE_MAX_CONCURRENT_ACTIVITIES": "100",
    "ORDER_ENGINE_MAX_RUNNING_STRATEGIES_PER_OWNER": "1000",
    "ORDER_ENGINE_LOG_LEVEL": "WARNING",
}
SEED_BULLMQ = {"orders/min": 50.0, "p50 s": 128.0, "p99 s": 244.0}  # the seed engine, run here
# Waiting limit orders: measured at WAITING_ORDERS, extrapolated (linearly) to WAITING_AT_SCALE.
WAITING_ORDERS, WAITING_AT_SCALE = 2000, 10_000
WAITING_PLAN = WaitingPlan(
    count=WAITING_ORDERS,
    idle_s=20,
    baseline_s=10,
    ticks=20,
    settle_timeout_s=20,  # after terminating what the load section left executing
    waiting_timeout_s=90,
)
WAITING_NEEDS_S = 130  # settling, baseline, placing, until all WAITING, idle window, ticks, stopping

# Table sections, in print order. Each engine figure is compared with the floor run the same way.
FLOOR_SEQ, FLOOR_CONC = "floor 1 at a time", f"floor {IN_FLIGHT} in flight"
SHAPE_SEQ, SHAPE_CONC = (
    "engine's shape, no-op steps, 1 at a time",
    f"engine's shape, no-op steps, {IN_FLIGHT} in flight",
)
ENGINE_SEQ, ENGINE_CONC = "engine 1 at a time", f"engine {IN_FLIGHT} in flight"
ROUTER, LOAD = "router", f"POST /orders at {LOAD_RATE_PER_S}/s, worker paused"
STREAMING = "streaming, 50 orders at once"
STREAMING_ONE = "streaming, one order at a time"
IDLE = "idle WebSockets"
WAITING = f"{WAITING_ORDERS} waiting limit orders"
SPEC = f"spec limits: {SPEC_BURST}-order burst"
# Many owners on one engine.
FLOOD, FLOOD_OTHERS = 300, 10
NEVER_FILLING, WATCHER_ORDERS = 300, 20
CONSERVATION_ORDERS, CONSERVATION_AMOUNT = 40, "300"
FAIR = f"fair shares: another owner behind a {FLOOD}-order flood"
WATCHER = f"{NEVER_FILLING} never-filling limit orders waiting"
CONSERVATION = f"wallet conservation: {CONSERVATION_ORDERS} orders at once on two APIs"
SHARING_NEEDS_S = 150
LANDING_TIME = "landing time by fee level (400 ms slots)"
SANDWICHES = "sandwiched public transactions, by size and slippage"
FEES_PAID = "fee paid per confirmed order"
LANDING_NEEDS_S = 90
PLANNER = "route planner, per order (genesis pools, exact-in and exact-out)"
QUOTES = "POST /quotes, one at a time, simulated quote latency 0"
PLANNER_CALLS, QUOTE_REQUESTS = 200, 200
CONDITIONAL_ORDERS = 1000
CONDITIONAL_TWAPS = 100
CONDITIONAL = (
    f"{CONDITIONAL_ORDERS} waiting stop-loss and trailing-stop orders, {CONDITIONAL_TWAPS} running TWAPs"
)
CONDITIONAL_NEEDS_S = 80
# One owner's undecided limits beside another owner's trailing stop (issue 21).
PROTECTIVE_LIMITS, PROTECTIVE_MOVES = 1000, 7
PROTECTIVE = f"{PROTECTIVE_LIMITS} undecided limits of one owner, a trailing stop of another"
PROTECTIVE_NEEDS_S = 60
# At the spec's rate, with simulated latencies 0: only admission holds an order back.
FAIR_SETTINGS = {
    **ENGINE_SETTINGS,
    "ORDER_ENGINE_ORDERS_PER_MINUTE": "100",
    "ORDER_ENGINE_MAX_CONCURRENT_ACTIVITIES": "10",
}
TARGETS = "targets"
SECTIONS = [
    TARGETS,
    FLOOR_SEQ,
    FLOOR_CONC,
    SHAPE_SEQ,
    SHAPE_CONC,
    ENGINE_SEQ,
    ENGINE_CONC,
    STREAMING,
    STREAMING_ONE,
    IDLE,
    SPEC,
    LOAD,
    ROUTER,
    WAITING,
    FAIR,
    WATCHER,
    CONSERVATION,
    LANDING_TIME,
    SANDWICHES,
    FEES_PAID,
    PLANNER,
    QUOTES,
    CONDITIONAL,
    PROTECTIVE,
]


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
        progress(f"planner: {PLANNER_CALLS} plans per pair, 1 to 3 hops …")
        figures += [
            figure
            for timing in time_planner(PLANNER_CALLS)
            for figure in (
                Figure(PLANNER, f"{timing.label} ({timing.hops} hop) p50", timing.p50_ms, "ms"),
                Figure(
                    PLANNER,
                    f"{timing.label} ({timing.hops} hop) p99",
                    timing.p99_ms,
                    "ms",
                    note=f"routes of up to {timing.seen_hops} hop(s)",
                ),
            )
        ]
        progress("starting embedded Temporal, PostgreSQL, Redis …")
        urls = stack.start()
        run_migrations(urls.database_url)
        engine = EngineProcesses(urls, tmp / "engine", ENGINE_SETTINGS)
        asyncio.run(run_sections(urls, stack, engine, figures, notes, started))
    except KeyboardInterrupt:
        progress("interrupted; stopping what was started")
        code = 130
    except Exception:
        traceback.print_exc()
        if engine is not None:
            for process in engine.processes:
                print(process.log_tail(), file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if engine is not None and engine.processes:
            exited = engine.stop()
            notes.append(
                "teardown: after SIGTERM, "
                + ", ".join(
                    f"{role} exited in {seconds:.1f}s"
                    if seconds is not None
                    else f"{role} was SIGKILLed at 30s"
                    for role, seconds in exited.items()
                )
            )
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
        figures += floor_figures(FLOOR_CONC, floor_conc, throughput=True)
        figures += cpu_figures(FLOOR_CONC, cores, floor_conc.per_s, "workflow")
        progress(f"floor: p50 {floor_seq.p50_ms:.0f} ms alone, {floor_conc.per_s:.1f} workflows/s")

        progress("engine's shape with no-op steps: 1 rate-limited activity + 10 local activities …")
        await run_floor(client, FLOOR_WARMUP, FLOOR_WARMUP, shape=True)
        shape_seq = await run_floor(client, SEQUENTIAL_RUNS, 1, shape=True)
        meter.start()
        shape_conc = await run_floor(client, CONCURRENT_RUNS, IN_FLIGHT, shape=True)
        cores = meter.stop()
    figures += shape_figures(SHAPE_SEQ, shape_seq, floor_seq, throughput=False)
    figures += shape_figures(SHAPE_CONC, shape_conc, floor_conc, throughput=True)
    figures += cpu_figures(SHAPE_CONC, cores, shape_conc.per_s, "workflow")
    progress(f"shape: p50 {shape_seq.p50_ms:.0f} ms alone, {shape_conc.per_s:.1f} workflows/s")

    progress("engine: starting the worker and the API …")
    await asyncio.to_thread(engine.start_all)
    warmup = await run_orders(engine.api_url, engine.operator_key(), ENGINE_WARMUP, 1)
    if warmup.confirmed == 0:
        raise RuntimeError(f"no warm-up order was confirmed: {warmup.errors[:3]}")

    progress(f"engine: {SEQUENTIAL_RUNS} orders one at a time …")
    engine_seq = await run_orders(engine.api_url, engine.operator_key(), SEQUENTIAL_RUNS, 1)
    figures += order_figures(ENGINE_SEQ, engine_seq, floor_seq, throughput=False)
    notes += [f"{ENGINE_SEQ}: {error}" for error in engine_seq.errors[:5]]

    progress(f"engine: {CONCURRENT_RUNS} orders, {IN_FLIGHT} in flight …")
    meter = CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})
    meter.start()
    engine_conc = await run_orders(engine.api_url, engine.operator_key(), CONCURRENT_RUNS, IN_FLIGHT)
    figures += order_figures(ENGINE_CONC, engine_conc, floor_conc, throughput=True)
    figures += cpu_figures(ENGINE_CONC, meter.stop(), engine_conc.per_s, "order")
    notes += [f"{ENGINE_CONC}: {error}" for error in engine_conc.errors[:5]]
    progress(f"engine: p50 {engine_seq.p50_ms:.0f} ms alone, {engine_conc.per_s:.1f} orders/s")

    figures += await streaming_section(engine, server_pids, notes)

    progress(f"quotes: {QUOTE_REQUESTS} POST /quotes per pair, 1 to 3 hops …")
    for timing in await time_quotes(engine.api_url, engine.operator_key(), QUOTE_REQUESTS):
        target = 50 if timing.hops == 1 else 150 if timing.hops == 3 else None
        figures += [
            Figure(QUOTES, f"{timing.label} ({timing.hops} hop) p50", timing.p50_ms, "ms"),
            Figure(
                QUOTES,
                f"{timing.label} ({timing.hops} hop) p99",
                timing.p99_ms,
                "ms",
                note=f"target ≤ {target} ms" if target else "",
            ),
        ]

    waiting: WaitingResult | None = None
    elapsed = time.monotonic() - started
    if elapsed + WAITING_NEEDS_S + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{WAITING}: skipped, {elapsed:.0f}s of the {BUDGET_S}s budget already used")
    else:
        waiting = await waiting_section(urls, engine, server_pids, figures, notes)
        progress(f"streaming: {IDLE_WEBSOCKETS} idle WebSockets on the waiting orders …")
        idle = await idle_websockets(
            engine.api_url,
            engine.operator_key(),
            engine.pids()["api"],
            waiting.placement.order_ids,
            IDLE_WEBSOCKETS,
        )
        figures += [
            Figure(IDLE, "idle WebSockets open", f"{idle.connections}/{IDLE_WEBSOCKETS}"),
            Figure(
                IDLE,
                f"API rss with {idle.connections} idle WebSockets",
                idle.rss_after_mb,
                "MB",
                note=f"{idle.rss_before_mb:.0f} MB before; {idle.per_connection_kb:.1f} KB each; target < 500 MB",
            ),
        ]
        notes += [f"{IDLE}: {error}" for error in idle.errors]

    if time.monotonic() - started + ONE_AT_A_TIME_NEEDS_S + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{STREAMING}: delivery one order at a time skipped for the time budget")
    else:
        figures += await one_at_a_time_section(engine, server_pids, notes)

    if time.monotonic() - started + SHARING_NEEDS_S + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{WATCHER}, {CONSERVATION}: skipped for the time budget")
    else:
        figures += await sharing_sections(engine, notes)

    if time.monotonic() - started + LANDING_NEEDS_S + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{LANDING_TIME}, {SANDWICHES}: skipped for the time budget")
    else:
        figures += await landing_sections(engine, notes)

    if time.monotonic() - started + CONDITIONAL_NEEDS_S + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{CONDITIONAL}: skipped for the time budget")
    else:
        progress(
            f"conditional: {CONDITIONAL_ORDERS} stop and trailing orders waiting, {CONDITIONAL_TWAPS} TWAPs running …"
        )
        conditional = await run_conditional(
            engine.api_url,
            engine.operator_key(),
            engine.new_key("twap-bench"),
            urls.database_url,
            CONDITIONAL_ORDERS,
            CONDITIONAL_TWAPS,
            engine.pids()["worker"],
        )
        notes += [f"{CONDITIONAL}: {error}" for error in conditional.errors[:5]]
        figures += [
            Figure(CONDITIONAL, "placed", f"{conditional.placed}/{CONDITIONAL_ORDERS}"),
            Figure(CONDITIONAL, "TWAPs running", f"{conditional.twaps_running}/{CONDITIONAL_TWAPS}"),
            Figure(CONDITIONAL, "watcher tick p50", conditional.ticks.p50_ms, "ms"),
            Figure(CONDITIONAL, "watcher tick p99", conditional.ticks.p99_ms, "ms"),
            Figure(CONDITIONAL, "worker cpu, idle", conditional.worker_cores_idle, "cores"),
            Figure(
                CONDITIONAL,
                "price move → triggered order ROUTING, p50",
                conditional.delay_p50_s * 1000,
                "ms",
                note=f"{len(conditional.trigger_delays_s)} moves; max {max(conditional.trigger_delays_s, default=0) * 1000:.0f} ms",
            ),
        ]

    if time.monotonic() - started + PROTECTIVE_NEEDS_S + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
        notes.append(f"{PROTECTIVE}: skipped for the time budget")
    else:
        progress(
            f"protective: {PROTECTIVE_LIMITS} undecided limits of one owner, a trailing stop of another …"
        )
        protective = await run_protective(
            engine.api_url,
            engine.operator_key(),
            engine.new_key("protective-bench"),
            PROTECTIVE_LIMITS,
            PROTECTIVE_MOVES,
        )
        notes += [f"{PROTECTIVE}: {error}" for error in protective.errors[:5]]
        figures += [
            Figure(PROTECTIVE, "placed", f"{protective.placed}/{PROTECTIVE_LIMITS}"),
            Figure(PROTECTIVE, "price move → trailing stop ROUTING, p50", protective.p50_s * 1000, "ms"),
            Figure(
                PROTECTIVE,
                "price move → trailing stop ROUTING, p99",
                protective.p99_s * 1000,
                "ms",
                note=f"{len(protective.delays_s)} moves",
            ),
        ]

    # The spec's limits need an engine with the default settings: the first one goes.
    engine.stop()
    spec_engine = EngineProcesses(urls, engine.data_dir.parent / "engine-spec", SPEC_SETTINGS)
    try:
        await asyncio.to_thread(spec_engine.start_all)
        elapsed = time.monotonic() - started
        if elapsed + SPEC_NEEDS_S + LOAD_NEEDS_S > BUDGET_S:
            notes.append(f"{SPEC}: skipped, {elapsed:.0f}s of the {BUDGET_S}s budget already used")
        else:
            figures += await spec_section(urls, spec_engine, notes)
        elapsed = time.monotonic() - started
        if elapsed + LOAD_NEEDS_S > BUDGET_S:
            notes.append(f"{LOAD}: skipped, {elapsed:.0f}s of the {BUDGET_S}s budget already used")
        else:
            spec_engine.first("worker").pause()  # accepted orders pile up; nothing executes
            await load_section(spec_engine, server_pids, figures, notes)
    finally:
        spec_engine.stop()
    fair_engine = EngineProcesses(urls, engine.data_dir.parent / "engine-fair", FAIR_SETTINGS)
    try:
        await asyncio.to_thread(fair_engine.start_all)
        figures += await fair_section(fair_engine, notes)
    finally:
        fair_engine.stop()
    figures += target_figures(figures)


async def landing_sections(engine: EngineProcesses, notes: list[str]) -> list[Figure]:
    progress(f"landing: {len(LEVELS)} fee levels at congestion {' and '.join(map(str, CONGESTIONS))} …")
    settings = Settings.model_validate({k: v for k, v in engine.env().items() if k in SETTINGS_NAMES})
    landing = await measure_landing(settings)
    notes += [f"{LANDING_TIME}: {error}" for error in landing.errors[:5]]
    figures = []
    for congestion in CONGESTIONS:
        for level in LEVELS:
            slots = landing.slots.get((congestion, level), [])
            figures.append(
                Figure(
                    LANDING_TIME,
                    f"congestion {congestion}, {level}: p50",
                    landing.p(congestion, level, 50),
                    "slots",
                    note=f"p90 {landing.p(congestion, level, 90):.0f}, max {max(slots, default=0)}; "
                    f"{landing.expired.get((congestion, level), 0)}/{PER_LEVEL} expired",
                )
            )
    for (size, slippage), (hits, n, damage) in sorted(landing.sandwiched.items()):
        figures.append(
            Figure(
                SANDWICHES,
                f"{size} SOL at {slippage} bps",
                round(100 * hits / n, 1),
                "%",
                note=f"{hits}/{n}; fill {damage:.0f} bps below clean when hit" if hits else f"0/{n}",
            )
        )
    fees = [float(f) for f in landing.fees_lamports]
    figures += [
        Figure(FEES_PAID, "p50", percentile(fees, 50), "lamports", note=f"{len(fees)} orders, auto priority"),
        Figure(FEES_PAID, "p99", percentile(fees, 99), "lamports"),
    ]
    return figures


async def sharing_sections(engine: EngineProcesses, notes: list[str]) -> list[Figure]:
    progress(f"watcher: other owners' market orders, then with {NEVER_FILLING} never-filling limit orders …")
    other = engine.new_key("bench-other")
    load = await watcher_under_load(
        engine.api_url, engine.operator_key(), other, NEVER_FILLING, WATCHER_ORDERS
    )
    notes += [f"{WATCHER}: {error}" for error in load.errors[:5]]
    progress(f"watcher: market p50 ×{load.ratio:.2f} with them waiting")
    figures = [
        Figure(
            WATCHER,
            "market order p50, none waiting",
            percentile(load.baseline_ms, 50),
            "ms",
            note="other owners, one at a time",
        ),
        Figure(WATCHER, "market order p50, with them waiting", percentile(load.with_waiting_ms, 50), "ms"),
        Figure(WATCHER, "ratio", load.ratio, note="target ≤ 1.5"),
        Figure(
            WATCHER,
            "a limit order made fillable: price move → CONFIRMED",
            load.fill_after_move_s if load.fill_after_move_s is not None else "did not fill",
            "s",
            note="target ≤ 2 s",
        ),
    ]
    progress(f"conservation: {CONSERVATION_ORDERS} × {CONSERVATION_AMOUNT} SOL at once through two APIs …")
    second_api = await asyncio.to_thread(engine.start, "api")
    try:
        owner = engine.new_key("bench-conservation")
        money = await conservation(
            [engine.api_url, str(second_api.url)], owner, CONSERVATION_ORDERS, CONSERVATION_AMOUNT
        )
    finally:
        second_api.terminate()
        engine.processes.remove(second_api)
    notes += [f"{CONSERVATION}: {error}" for error in money.errors[:5]]
    exact = money.sol_spent == money.sol_filled + money.sol_fees and money.usdc_received == money.usdc_filled
    figures += [
        Figure(
            CONSERVATION,
            "accepted / refused (insufficient_funds)",
            f"{money.accepted}/{money.refused_insufficient}",
            note=f"of {money.asked}; 10 000 SOL fit 33",
        ),
        Figure(CONSERVATION, "CONFIRMED / FAILED", f"{money.confirmed}/{money.failed}"),
        Figure(
            CONSERVATION,
            "SOL: total moved vs Σ fills + Σ fees",
            f"{money.sol_spent} / {money.sol_filled} + {money.sol_fees}",
            note="exact" if exact else "DIFFERS",
        ),
        Figure(CONSERVATION, "USDC: total moved vs Σ fills", f"{money.usdc_received} / {money.usdc_filled}"),
        Figure(CONSERVATION, "reserved after, all tokens", str(money.reserved_after), note="target 0"),
        Figure(CONSERVATION, "lowest available seen", str(money.lowest_available), note="never below 0"),
    ]
    return figures


async def fair_section(engine: EngineProcesses, notes: list[str]) -> list[Figure]:
    progress(f"fair shares: one owner floods {FLOOD} orders at 100/min; another places {FLOOD_OTHERS} …")
    result = await fair_shares(
        engine.api_url, engine.operator_key(), engine.new_key("bench-patient"), FLOOD, FLOOD_OTHERS, 100
    )
    notes += [f"{FAIR}: {error}" for error in result.errors[:5]]
    progress(f"fair shares: the other owner's p50 {result.p50_s:.1f} s")
    return [
        Figure(
            FAIR,
            "the other owner's orders: accepted → CONFIRMED p50",
            result.p50_s,
            "s",
            note="target ≤ 5 s; simulated latencies 0",
        ),
        Figure(FAIR, "p99", result.p99_s, "s"),
        Figure(
            FAIR,
            "first in, first out, they would wait",
            result.fifo_wait_s,
            "s",
            note=f"{result.flood} queued at 100/min",
        ),
    ]


async def streaming_section(
    engine: EngineProcesses, server_pids: dict[str, int], notes: list[str]
) -> list[Figure]:
    progress(
        f"streaming: {STREAM_ORDERS} limit orders × {SUBSCRIBERS_PER_ORDER} subscribers, one price move …"
    )
    meter = CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})
    result = await delivery_with_subscribers(engine.api_url, engine.operator_key(), STREAM_ORDERS, meter)
    return delivery_figures(
        STREAMING,
        result,
        notes,
        how="all orders triggered at once",
        took="burst: price move → last terminal frame",
    )


async def one_at_a_time_section(
    engine: EngineProcesses, server_pids: dict[str, int], notes: list[str]
) -> list[Figure]:
    progress(
        f"streaming: {STREAM_ORDERS} sniper orders × {SUBSCRIBERS_PER_ORDER} subscribers, one at a time …"
    )
    meter = CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})
    result = await delivery_one_at_a_time(engine.api_url, engine.operator_key(), STREAM_ORDERS, meter)
    return delivery_figures(
        STREAMING_ONE,
        result,
        notes,
        how="each pool opens after the last order ended",
        took="all orders in turn",
    )


def delivery_figures(
    section: str, result: DeliveryResult, notes: list[str], *, how: str, took: str
) -> list[Figure]:
    notes += [f"{section}: {error}" for error in result.errors]
    progress(f"{section}: delivery p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
    subscribers = STREAM_ORDERS * SUBSCRIBERS_PER_ORDER
    return [
        Figure(section, "subscribed WebSockets", f"{result.subscribers}/{subscribers}"),
        Figure(
            section,
            f"delivery p50, {result.subscribers} subscribed",
            result.p50_ms,
            "ms",
            note=f"event `at` → frame; {result.live_frames} live frames; {how}",
        ),
        Figure(section, "delivery p99", result.p99_ms, "ms", note="target ≤ 20 ms"),
        Figure(section, "delivery max", result.max_ms, "ms"),
        Figure(section, "subscriptions without their terminal event", result.incomplete),
        Figure(section, took, result.burst_s, "s"),
        *cpu_figures(section, result.cores, result.live_frames / result.burst_s, "live frame"),
    ]


async def spec_section(urls: InfraUrls, engine: EngineProcesses, notes: list[str]) -> list[Figure]:
    progress(f"spec limits: {SPEC_BURST} orders at once, 100/min, 10 activities, default latencies …")
    result: SpecLimitsResult = await burst_at_spec_limits(
        engine.api_url, engine.operator_key(), urls.database_url, SPEC_BURST, SPEC_TIMEOUT_S
    )
    notes += [f"{SPEC}: {error}" for error in result.errors]
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


def _value(figures: list[Figure], section: str, metric: str) -> float:
    for figure in figures:
        if (
            figure.section == section
            and figure.metric.startswith(metric)
            and isinstance(figure.value, float | int)
        ):
            return float(figure.value)
    return float("nan")


def target_figures(figures: list[Figure]) -> list[Figure]:
    """The issue's targets, each against its measured figure (ratios in this same run)."""
    p50 = _value(figures, ENGINE_SEQ, "latency p50") / _value(figures, FLOOR_SEQ, "latency p50")
    rate = _value(figures, ENGINE_CONC, "throughput") / _value(figures, FLOOR_CONC, "throughput")
    checks = [
        ("engine p50 ÷ floor p50", p50, "≤ 0.5 (stretch 0.25)", p50 <= 0.5),
        ("engine orders/s ÷ floor workflows/s", rate, "≥ 1.2 (stretch 1.5)", rate >= 1.2),
        ("spec limits: orders/min", _value(figures, SPEC, "executed per minute"), "≥ 90", None),
        ("spec limits: most in any 60 s", _value(figures, SPEC, "most admitted"), "≤ 104", None),
        ("POST /orders p99 at 200/s", _value(figures, LOAD, "202 latency p99"), "≤ 30 ms", None),
        (
            "WebSocket delivery p99, 1 000 subscribed, orders one at a time",
            _value(figures, STREAMING_ONE, "delivery p99"),
            "≤ 20 ms",
            None,
        ),
        (
            "WebSocket delivery p99, 1 000 subscribed, 50 orders at once",
            _value(figures, STREAMING, "delivery p99"),
            "≤ 20 ms",
            None,
        ),
        ("API rss, 5 000 idle WebSockets", _value(figures, IDLE, "API rss"), "< 500 MB", None),
        (
            f"another owner behind a {FLOOD}-order flood, p50",
            _value(figures, FAIR, "the other owner"),
            "≤ 5 s",
            None,
        ),
        (
            f"market p50 with {NEVER_FILLING} never-filling limits ÷ without",
            _value(figures, WATCHER, "ratio"),
            "≤ 1.5",
            None,
        ),
        (
            "a limit order made fillable fills within",
            _value(figures, WATCHER, "a limit order"),
            "≤ 2 s",
            None,
        ),
    ]
    limits = {
        "≥ 90": (90, 1),
        "≤ 104": (104, -1),
        "≤ 30 ms": (30, -1),
        "≤ 20 ms": (20, -1),
        "< 500 MB": (500, -1),
        "≤ 5 s": (5, -1),
        "≤ 1.5": (1.5, -1),
        "≤ 2 s": (2, -1),
    }
    rows = []
    for name, value, target, met in checks:
        if met is None:
            bound, direction = limits[target]
            met = value >= bound if direction > 0 else value <= bound
        rows.append(Figure(TARGETS, name, value, note=f"target {target}: {'met' if met else 'MISSED'}"))
    return rows


async def load_section(
    engine: EngineProcesses, server_pids: dict[str, int], figures: list[Figure], notes: list[str]
) -> None:
    progress(f"load: POST /orders at {LOAD_RATE_PER_S}/s for {LOAD_SECONDS}s (open loop) …")
    engine.check_alive()
    meter = CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})
    meter.start()
    started = time.perf_counter()
    load = await post_under_load(engine.api_url, engine.operator_key(), LOAD_RATE_PER_S, LOAD_SECONDS)
    # Per request sent: one the client gave up on (timed out) was still served.
    sent_per_s = load.sent / (time.perf_counter() - started)
    figures += [
        Figure(LOAD, "202 latency p50", load.p50_ms, "ms", note="one API process; the worker SIGSTOPped"),
        Figure(LOAD, "202 latency p99", load.p99_ms, "ms"),
        Figure(LOAD, "accepted (202)", f"{load.accepted}/{load.sent}"),
        Figure(LOAD, "achieved send rate", load.achieved_per_s, "req/s", note=f"target {LOAD_RATE_PER_S}"),
        Figure(LOAD, "max send lag", load.max_send_lag_ms, "ms", note="worst lateness of a send"),
        *cpu_figures(LOAD, meter.stop(), sent_per_s, "request"),
    ]
    notes.append(
        f"{LOAD}: the worker is paused (SIGSTOP), so accepted orders pile up unexecuted; latency "
        "counts from each request's scheduled send instant, so a late generator does not hide slowness"
    )
    notes += [f"{LOAD}: {error}" for error in load.errors[:5]]
    progress(f"load: p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms")


async def waiting_section(
    urls: InfraUrls,
    engine: EngineProcesses,
    server_pids: dict[str, int],
    figures: list[Figure],
    notes: list[str],
) -> WaitingResult:
    plan = WAITING_PLAN
    progress("waiting: terminating what the load section left executing …")
    engine.check_alive()

    def meter() -> CpuMeter:
        return CpuMeter({**engine.pids(), **server_pids, "bench (client)": os.getpid()})

    result = await run_waiting(
        plan, engine.api_url, engine.operator_key(), urls.database_url, urls.temporal_address, meter
    )
    engine.check_alive()
    figures += waiting_figures(result, plan)
    scale = WAITING_AT_SCALE / result.count
    notes += [
        f"{WAITING}: first terminated in Temporal the {result.terminated} orders the load section left "
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
        notes.append(
            f"{WAITING}: their rows changed while idle: {result.footprint_before} → {result.footprint_after}"
        )
    progress(
        f"waiting: {len(result.placement.order_ids)} placed at {result.placement.per_s:.0f}/s, "
        f"watcher tick p50 {result.ticks.p50_ms:.1f} ms"
    )
    return result


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


def cpu_figures(section: str, cores: dict[str, float], per_s: float, item: str) -> list[Figure]:
    """Cores each process used, and so its CPU time per workflow, order or request."""
    figures = [
        Figure(section, f"cpu: {name}", used, "cores", note=f"{used / per_s * 1000:.1f} ms per {item}")
        for name, used in cores.items()
    ]
    total = sum(cores.values())
    return [
        *figures,
        Figure(
            section, "cpu: all measured", total, "cores", note=f"{total / per_s * 1000:.1f} ms per {item}"
        ),
    ]


def shape_figures(section: str, shape: FloorResult, floor: FloorResult, *, throughput: bool) -> list[Figure]:
    figures = [
        Figure(
            section,
            "latency p50 (start → result)",
            shape.p50_ms,
            "ms",
            ratio(shape.p50_ms, floor.p50_ms),
            note="the engine's lower bound with this shape",
        ),
        Figure(section, "latency p99", shape.p99_ms, "ms", ratio(shape.p99_ms, floor.p99_ms)),
    ]
    if throughput:
        figures.append(
            Figure(section, "throughput", shape.per_s, "workflows/s", ratio(shape.per_s, floor.per_s))
        )
    return [*figures, Figure(section, "failed", shape.failed)]


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
        "load": {"rate_per_s": LOAD_RATE_PER_S, "seconds": LOAD_SECONDS, "worker": "paused"},
        "streaming": {
            "orders": STREAM_ORDERS,
            "subscribers_per_order": SUBSCRIBERS_PER_ORDER,
            "idle": IDLE_WEBSOCKETS,
        },
        "spec_limits": {"burst": SPEC_BURST, "settings": SPEC_SETTINGS, "seed_bullmq": SEED_BULLMQ},
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
        },
    }


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A process that ran a Temporal worker may abort at interpreter exit (sdk-python#300).
    os._exit(exit_code)
