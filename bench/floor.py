"""The floor: the cheapest workflow shaped like an order - 5 sequential no-op regular
activities - on the same dev server, with a worker inside the bench process."""

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


@dataclass(frozen=True)
class FloorResult:
    p50_ms: float
    p99_ms: float
    per_s: float
    completed: int
    failed: int


async def _one(client: Client) -> float:
    """End-to-end seconds: start_workflow → result."""
    started = time.perf_counter()
    handle = await client.start_workflow(
        FloorWorkflow.run, id=f"bench-floor-{uuid.uuid4().hex}", task_queue=TASK_QUEUE
    )
    await handle.result()
    return time.perf_counter() - started


@asynccontextmanager
async def floor_worker(temporal_address: str) -> AsyncIterator[Client]:
    """A client, with a worker for FloorWorkflow polling in this process while open."""
    client = await Client.connect(temporal_address)
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[FloorWorkflow], activities=[noop]):
        yield client


async def run_floor(client: Client, runs: int, in_flight: int) -> FloorResult:
    """`runs` workflows, at most `in_flight` at once (1 = one at a time)."""
    gate = asyncio.Semaphore(in_flight)

    async def gated() -> float:
        async with gate:
            return await asyncio.wait_for(_one(client), 60)

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
