"""The order workflow on its own Temporal dev server, with a worker whose simulated
chain refuses every submit: retries, failure records and the final FAILED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.orders import OrderInput
from core.domain import OrderStatus, OrderType
from core.temporal import ORDERS_TASK_QUEUE, SEARCH_ATTRIBUTE_KEYS
from devstack import InfraUrls
from devstack.temporal import temporal_binary
from orders import repository
from storage.database import create_engine, create_sessionmaker
from tests.conftest import make_settings, running_worker
from tests.rows import insert_order
from workflows.order import OrderWorkflow


@pytest.fixture(scope="module")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        search_attributes=SEARCH_ATTRIBUTE_KEYS,
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def run_order(env: WorkflowEnvironment, infra: InfraUrls, amount: str) -> str:
    engine = create_engine(infra.database_url)
    try:
        order_id = (await insert_order(create_sessionmaker(engine), amount=amount)).id
        await env.client.execute_workflow(
            OrderWorkflow.run,
            OrderInput(order_id, OrderType.MARKET, "SOL", "USDC", int(Decimal(amount) * 10**9), 50, 9, 6),
            id=order_id,
            task_queue=ORDERS_TASK_QUEUE,
        )
    finally:
        await engine.dispose()
    return order_id


async def test_submit_failing_every_time_fails_the_order_after_three_attempts(
    temporal_env: WorkflowEnvironment, infra: InfraUrls, tmp_path: Path
) -> None:
    settings = make_settings(
        infra,
        tmp_path,
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        ORDER_ENGINE_SIM_FAILURE_RATE=1,
    )
    async with running_worker(settings):
        order_id = await run_order(temporal_env, infra, "0.25")

    engine = create_engine(infra.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            order = await repository.get(session, order_id)
            failures = await repository.list_failures(session, order_id)
            events = await repository.list_events(session, order_id)
    finally:
        await engine.dispose()

    assert order is not None
    assert order.status == OrderStatus.FAILED
    assert order.attempts == 3
    assert order.failure_reason is not None and "ACCOUNT_IN_USE" in order.failure_reason
    assert [(f.activity, f.attempt, f.code) for f in failures] == [
        ("submit_transaction", n, "ACCOUNT_IN_USE") for n in (1, 2, 3)
    ]
    retries = [e.data["retry"] for e in events if "retry" in e.data]
    assert [(r["activity"], r["attempt"], r["backoff_ms"]) for r in retries] == [
        ("submit_transaction", 1, 500),
        ("submit_transaction", 2, 1000),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].status == OrderStatus.FAILED and events[-1].data["reason"] == order.failure_reason
