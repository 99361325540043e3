"""Expiry on Temporal's time-skipping test server: a day-long wait ends EXPIRED at once.
The recording activity is a fake here (this is about the workflow's timer)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.orders import OrderInput, TransitionRequest
from core.domain import OrderType
from core.temporal import ORDERS_TASK_QUEUE, SEARCH_ATTRIBUTE_KEYS
from orders.transitions import describe
from workflows.order import OrderWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


async def test_a_waiting_order_expires_when_its_timer_fires() -> None:
    recorded: list[TransitionRequest] = []

    @activity.defn(name="record_transition")
    async def record_transition(request: TransitionRequest) -> int:
        recorded.append(request)
        return len(recorded)

    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER)
    ) as env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTE_KEYS
                },
            )
        )
        task_queue = f"{ORDERS_TASK_QUEUE}-{uuid.uuid4()}"
        async with Worker(
            env.client, task_queue=task_queue, workflows=[OrderWorkflow], activities=[record_transition]
        ):
            now = (await env.get_current_time()).timestamp()
            order = OrderInput(
                order_id="ord_01J00000000000000000000000",
                order_type=OrderType.LIMIT,
                token_in="SOL",
                token_out="USDC",
                amount_in=10**9,
                slippage_bps=50,
                decimals_in=9,
                decimals_out=6,
                limit_price="1000",
                expires_at=now + 24 * 3600,
            )
            outcome = await env.client.execute_workflow(
                OrderWorkflow.run, order, id=order.order_id, task_queue=task_queue
            )
            elapsed = (await env.get_current_time()).timestamp() - now

    assert outcome.status == "EXPIRED"
    assert [r.status for r in recorded] == ["WAITING", "EXPIRED"]
    assert describe(recorded[0]).data["waiting_for"] == {"limit_price": "1000", "pair": "SOL/USDC"}
    assert elapsed >= 24 * 3600  # the server skipped a whole day of waiting
