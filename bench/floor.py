"""The floor: the cheapest workflow shaped like an order - 5 sequential no-op regular
activities - on the same dev server, with a worker inside the bench process.

Beside it, the engine's own shape with every step a no-op: one regular activity on a
second, rate-limited task queue (admission), then the 10 local activities an order
runs (a record, two parallel quotes, route, record, build, submit, record, confirm,
record). What that costs is what the SDK and the server cost for our workflow, before
any of our code runs."""

from __future__ import annotations

import asyncio
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
    from bench.stats import percentile

TASK_QUEUE = "bench-floor"
STEPS = 5
SHAPE_QUEUE, SHAPE_ADMISSION_QUEUE = "bench-shape", "bench-shape-admission"
SHAPE_LIMIT_PER_S = 1_000_000 / 60  # as the engine's benchmark: the limit lifted
STEP_TIMEOUT = timedelta(seconds=30)


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
