"""Many owners share the engine: one owner's backlog does not hold another's orders
back (Temporal's Task Queue Fairness, keyed by owner), and a workflow whose order row
is missing ends instead of retrying forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from temporalio.client import WorkflowFailureError

from contracts.orders import ORDER_WORKFLOW, OrderInput
from core.domain import OrderType
from core.ids import new_order_id
from core.settings import Settings
from core.temporal import ORDERS_TASK_QUEUE, connect_temporal
from devstack import InfraUrls
from tests.conftest import isolated_engine
from tests.integration.test_orders_api import wait_terminal
from tests.keys import auth, create_test_key
from tests.streams import TERMINAL

ORDER = {"token_in": "SOL", "token_out": "USDC", "amount": "0.1"}


async def test_one_owners_backlog_does_not_hold_back_another_owner(infra: InfraUrls, tmp_path: Path) -> None:
    flooder = await create_test_key(infra.database_url, "flooder")
    other = await create_test_key(infra.database_url, "patient")
    # One order a second for the whole system: 30 queued orders take 30 s to admit.
    async with (
        isolated_engine(infra, tmp_path, ORDER_ENGINE_ORDERS_PER_MINUTE=60) as url,
        httpx.AsyncClient(base_url=url, timeout=30, headers=auth(flooder)) as flood,
        httpx.AsyncClient(base_url=url, timeout=30, headers=auth(other)) as patient,
    ):
        backlog = await asyncio.gather(*(flood.post("/orders", json=ORDER) for _ in range(30)))
        assert all(r.status_code == 202 for r in backlog)
        mine = (await patient.post("/orders", json=ORDER)).json()["order_id"]
        assert (await wait_terminal(patient, mine, timeout=60))["status"] == "CONFIRMED"
        statuses = [(await flood.get(f"/orders/{r.json()['order_id']}")).json()["status"] for r in backlog]
    # First in, first out, the other owner's order would have come last: with fair
    # shares it went in among the first of the backlog.
    assert sum(status not in TERMINAL for status in statuses) >= 20, statuses


async def test_a_workflow_whose_order_row_is_missing_ends_at_once(settings: Settings, worker: object) -> None:
    temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
    order_id = new_order_id()  # never stored: its request failed after the start was sent
    handle = await temporal.start_workflow(
        ORDER_WORKFLOW,
        OrderInput(order_id, OrderType.MARKET, "SOL", "USDC", 10**8, 50, 9, 6),
        id=order_id,
        task_queue=ORDERS_TASK_QUEUE,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 30)
    causes: list[str] = []
    cause: BaseException | None = failure.value.cause
    while cause is not None:
        causes.append(str(cause))
        cause = cause.__cause__
    assert any("does not exist" in text for text in causes), causes
