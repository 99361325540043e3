"""The floor: the cheapest workflow shaped like an order - 5 sequential no-op regular
activities - on the same dev server, with a worker inside the bench process.

Beside it, the engine's own shape with every step a no-op: one regular activity on a
second, rate-limited task queue (admission), then the 10 local activities an order
runs (a record, two parallel quotes, route, record, build, submit, record, confirm,
record). What that costs is what the SDK and the server cost for our workflow, before
any of our code runs."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from bench.cpu import CpuMeter, cpu_figures
    from bench.report import progress
    from bench.sections import Section, Workbench
    from bench.stats import Figure, percentile, ratio

TASK_QUEUE = "bench-floor"
STEPS = 5
SHAPE_QUEUE, SHAPE_ADMISSION_QUEUE = "bench-shape", "bench-shape-admission"
SHAPE_LIMIT_PER_S = 1_000_000 / 60  # as the engine's benchmark: the limit lifted
STEP_TIMEOUT = timedelta(seconds=30)
IN_FLIGHT = 30
FLOOR_WARMUP = 20
SEQUENTIAL_RUNS, CONCURRENT_RUNS = 30, 300  # the floor and the engine alike
FLOOR_SEQ, FLOOR_CONC = "floor 1 at a time", f"floor {IN_FLIGHT} in flight"
SHAPE_SEQ, SHAPE_CONC = (
    "engine's shape, no-op steps, 1 at a time",
    f"engine's shape, no-op steps, {IN_FLIGHT} in flight",
)


@activity.defn
async def noop(step: int) -> int:
    return step


@workflow.defn
class FloorWorkflow:
    @workflow.run
    async def run(self) -> int:
        for step in range(STEPS):
            await workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
        return STEPS


@workflow.defn
class ShapeWorkflow:
    @workflow.run
    async def run(self) -> int:
        await workflow.execute_activity(
            noop, 0, task_queue=SHAPE_ADMISSION_QUEUE, start_to_close_timeout=STEP_TIMEOUT
        )
        await workflow.execute_local_activity(noop, 1, start_to_close_timeout=STEP_TIMEOUT)
        await asyncio.gather(
            *(workflow.execute_local_activity(noop, 2, start_to_close_timeout=STEP_TIMEOUT) for _ in range(2))
        )
        for step in range(3, 10):
            await workflow.execute_local_activity(noop, step, start_to_close_timeout=STEP_TIMEOUT)
        return 11


@dataclass(frozen=True)
class FloorResult:
    p50_ms: float
    p99_ms: float
    per_s: float
    completed: int
    failed: int


async def _one(client: Client, shape: bool) -> float:
    """End-to-end seconds: start_workflow → result."""
    started = time.perf_counter()
    handle = await client.start_workflow(
        ShapeWorkflow.run if shape else FloorWorkflow.run,
        id=f"bench-floor-{uuid.uuid4().hex}",
        task_queue=SHAPE_QUEUE if shape else TASK_QUEUE,
    )
    await handle.result()
    return time.perf_counter() - started


@asynccontextmanager
async def floor_worker(temporal_address: str) -> AsyncIterator[Client]:
    """A client, with workers for FloorWorkflow and ShapeWorkflow polling in this process
    while open."""
    client = await Client.connect(temporal_address)
    async with (
        Worker(client, task_queue=TASK_QUEUE, workflows=[FloorWorkflow], activities=[noop]),
        Worker(client, task_queue=SHAPE_QUEUE, workflows=[ShapeWorkflow], activities=[noop]),
        Worker(
            client,
            task_queue=SHAPE_ADMISSION_QUEUE,
            activities=[noop],
            max_task_queue_activities_per_second=SHAPE_LIMIT_PER_S,
        ),
    ):
        yield client


async def run_floor(client: Client, runs: int, in_flight: int, shape: bool = False) -> FloorResult:
    """`runs` workflows (ShapeWorkflow with `shape`), at most `in_flight` at once."""
    gate = asyncio.Semaphore(in_flight)

    async def gated() -> float:
        async with gate:
            return await asyncio.wait_for(_one(client, shape), 60)

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(gated() for _ in range(runs)), return_exceptions=True)
    elapsed = time.perf_counter() - started

    latencies = [o * 1000 for o in outcomes if isinstance(o, float)]
    return FloorResult(
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        per_s=len(latencies) / elapsed,
        completed=len(latencies),
        failed=runs - len(latencies),
    )


async def _run_floor_and_shape(workbench: Workbench) -> list[Figure]:
    figures: list[Figure] = []
    progress(f"floor: workflows of {STEPS} no-op activities, {SEQUENTIAL_RUNS} one at a time …")
    async with floor_worker(workbench.urls.temporal_address) as client:
        await run_floor(client, FLOOR_WARMUP, FLOOR_WARMUP)
        floor_seq = await run_floor(client, SEQUENTIAL_RUNS, 1)
        progress(f"floor: {CONCURRENT_RUNS} with {IN_FLIGHT} in flight …")
        meter = CpuMeter(
            {"temporal": workbench.server_pids["temporal"], "bench (client + worker)": os.getpid()}
        )
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
    return figures


def floor_figures(section: str, floor: FloorResult, *, throughput: bool) -> list[Figure]:
    figures = [
        Figure(section, "latency p50 (start → result)", floor.p50_ms, "ms"),
        Figure(section, "latency p99", floor.p99_ms, "ms"),
    ]
    if throughput:
        figures.append(Figure(section, "throughput", floor.per_s, "workflows/s"))
    return [*figures, Figure(section, "failed", floor.failed)]


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


FLOOR_SECTION = Section(
    name="floor",
    tables=(FLOOR_SEQ, FLOOR_CONC, SHAPE_SEQ, SHAPE_CONC),
    needs_s=60,
    run=_run_floor_and_shape,
    infra=True,
    parameters={
        "in_flight": IN_FLIGHT,
        "sequential_runs": SEQUENTIAL_RUNS,
        "concurrent_runs": CONCURRENT_RUNS,
        "floor": {"warmup": FLOOR_WARMUP, "activities": STEPS},
    },
)
