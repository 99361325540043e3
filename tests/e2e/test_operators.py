"""Operators: stuck orders, replaying a failed order, the timeline, search attributes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts.keys import key_id
from core.temporal import connect_temporal
from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, ROOT, EngineProcess, EngineProcesses
from devstack.ports import choose_port
from tests.e2e.test_faults import ORDER, statuses
from tests.keys import ALICE, KEY_SECRET_ENV, auth
from tests.streams import TERMINAL, read_stream


@pytest.fixture
def engine(stack: EmbeddedStack, tmp_path: Path) -> Iterator[EngineProcesses]:
    engine = EngineProcesses(
        stack.urls,
        tmp_path,
        {
            **QUIET_MARKET,
            **KEY_SECRET_ENV,
            "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "0",
            "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "0",
        },
    )
    try:
        yield engine
    finally:
        engine.stop()


def cli(engine: EngineProcesses, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=engine.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def timeline(client: httpx.AsyncClient, order_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get(f"/orders/{order_id}/events")).json()["items"]
    return items


async def until_terminal(client: httpx.AsyncClient, order_id: str) -> str:
    async with asyncio.timeout(60):
        while (status := (await statuses(client, [order_id]))[order_id]) not in TERMINAL:
            await asyncio.sleep(0.1)
    return status


async def test_an_order_with_no_worker_is_listed_as_stuck(engine: EngineProcesses) -> None:
    api = engine.start("api")
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(ALICE)) as client:
        order_id = (await client.post("/orders", json=ORDER)).json()["order_id"]
        async with asyncio.timeout(30):
            while order_id not in (listed := cli(engine, "orders", "stuck", "--older-than", "1s")).stdout:
                await asyncio.sleep(0.5)
        line = next(row for row in listed.stdout.splitlines() if order_id in row)
        assert "PENDING" in line and "RUNNING" in line
        engine.start("worker")  # the stuck order runs once a worker is there
        assert await until_terminal(client, order_id) == "CONFIRMED"
    assert "no order stuck" in cli(engine, "orders", "stuck", "--older-than", "1h").stdout
    assert cli(engine, "orders", "stuck", "--older-than", "soon").returncode != 0


async def test_replaying_a_failed_order_confirms_it_once(
    engine: EngineProcesses, stack: EmbeddedStack
) -> None:
    failing = engine.start("worker", ORDER_ENGINE_SIM_FAILURE_RATE="1")
    api = engine.start("api")
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(ALICE)) as client:
        order_id = (await client.post("/orders", json=ORDER)).json()["order_id"]
        assert await until_terminal(client, order_id) == "FAILED"

        temporal = await connect_temporal(stack.urls.temporal_address, "default")
        query = f'OrderStatus="FAILED" AND WorkflowId="{order_id}"'
        async with asyncio.timeout(30):  # visibility is eventually consistent
            while not [w async for w in temporal.list_workflows(query)]:
                await asyncio.sleep(0.2)

        description = await temporal.get_workflow_handle(order_id).describe()
        assert await description.static_summary() == "market 0.5 SOL → USDC"
        assert "pair: SOL/USDC" in (await description.static_details() or "")

        failing.terminate()
        metrics_port = choose_port()
        engine.start("worker", ORDER_ENGINE_WORKER_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}")
        replayed = cli(engine, "orders", "replay", order_id)
        assert replayed.returncode == 0, replayed.stderr
        assert "new run" in replayed.stdout
        async with asyncio.timeout(30):  # the new run re-opens the order with a replay event
            while not any("replay" in e.get("data", {}) for e in await timeline(client, order_id)):
                await asyncio.sleep(0.1)
        assert await until_terminal(client, order_id) == "CONFIRMED"
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
        assert len(txs) == 1
        sdk_metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert "temporal_activity_execution_latency" in sdk_metrics  # the worker's SDK metrics
        events = [
            e
            for e in (await client.get(f"/orders/{order_id}/events")).json()["items"]
            if e["type"] == "EVENT"
        ]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert any("replay" in e["data"] for e in events)

        again = cli(engine, "orders", "replay", order_id)
        assert again.returncode == 1 and "nothing to re-drive" in again.stderr
        shown = cli(engine, "orders", "show", order_id)
        assert order_id in shown.stdout and "CONFIRMED" in shown.stdout and "replay" in shown.stdout
        assert "history:" in shown.stdout and "activities" in shown.stdout
        report = (await client.get(f"/orders/{order_id}")).json()
        # The fill report to the lamport, as the API gives it.
        assert (
            f"fees: {report['fees']['total_sol']} SOL = {report['fees']['network_lamports']} network"
            in shown.stdout
        )
        assert f"landed {report['landed_slot']}" in shown.stdout
        selected = (await client.get(f"/orders/{order_id}")).json()["selected_dex"]
        query = f'OrderStatus="CONFIRMED" AND SelectedDex="{selected}" AND WorkflowId="{order_id}"'
        async with asyncio.timeout(30):
            while not [w async for w in temporal.list_workflows(query)]:
                await asyncio.sleep(0.2)


def test_temporal_setup_registers_the_search_attributes(engine: EngineProcesses) -> None:
    result = cli(engine, "temporal", "setup")
    assert result.returncode == 0, result.stderr
    assert "OrderStatus, OrderType, SelectedDex, TokenPair" in result.stdout


async def test_tracing_when_switched_on_covers_http_workflow_and_activities(engine: EngineProcesses) -> None:
    engine.settings["ORDER_ENGINE_TRACING"] = "console"
    worker, api = engine.start("worker"), engine.start("api")
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(ALICE)) as client:
        order_id = (await client.post("/orders", json=ORDER)).json()["order_id"]
        assert await until_terminal(client, order_id) == "CONFIRMED"
    worker_spans, api_spans = _log(worker), _log(api)
    assert '"name": "RunWorkflow:OrderWorkflow"' in worker_spans
    assert '"name": "RunActivity:submit_transaction"' in worker_spans
    assert '"name": "StartWorkflow:OrderWorkflow"' in api_spans and '"name": "POST /orders"' in api_spans


async def test_keys_from_the_command_line(engine: EngineProcesses) -> None:
    api = engine.start("api")
    # A production process makes no key of its own (only `order-engine dev` does).
    assert not (engine.data_dir / "api-key").exists()
    made = cli(engine, "keys", "create", "--name", "ops-2", "--operator")
    assert made.returncode == 0, made.stderr
    local = made.stdout.strip().splitlines()[-1]
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(local)) as operator:
        assert (await operator.get("/orders/stuck")).status_code == 200

    created = cli(engine, "keys", "create", "--name", "erin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert cli(engine, "keys", "create", "--name", "Not A Name!").returncode != 0
    listed = cli(engine, "keys", "list").stdout
    assert any(key_id(key) in line and "erin" in line and "ordinary" in line for line in listed.splitlines())
    assert any(key_id(local) in line and "operator" in line for line in listed.splitlines())
    assert key not in listed

    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(key)) as erin:
        order_id = (await erin.post("/orders", json=ORDER)).json()["order_id"]
        assert (await erin.get("/orders/stuck")).status_code == 403
        stream = await read_stream(str(api.url), f"orderId={order_id}", until_frames=1, key=key)
        assert stream.snapshot["type"] == "SNAPSHOT"
        revoked = cli(engine, "keys", "revoke", key_id(key))
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        async with asyncio.timeout(10):
            while (await erin.get(f"/orders/{order_id}")).status_code != 401:
                await asyncio.sleep(0.1)
        await erin.get("/orders", headers=auth(ALICE[:-1] + "x"))  # a near miss is logged as a 401
    assert cli(engine, "keys", "revoke", "oe_nothere1").returncode == 1
    # The API logged every request (and uvicorn the WebSocket's URL), but not a key.
    log = _log(api)
    assert '"path": "/orders/stuck"' in log and "token=[redacted]" in log
    assert key not in log and ALICE[:-1] not in log


def _log(process: EngineProcess) -> str:
    assert process.log is not None
    return process.log.read_text()


async def test_operators_list_show_and_cancel_strategies(engine: EngineProcesses) -> None:
    api = engine.start("api")
    engine.start("worker")
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(ALICE)) as client:
        created = await client.post(
            "/strategies",
            json={
                "type": "dca",
                "token_in": "SOL",
                "token_out": "USDC",
                "amount_per_order": "0.01",
                "every": "1h",
            },
        )
        assert created.status_code == 202, created.text
        strategy_id = created.json()["strategy_id"]
        listed = cli(engine, "strategies", "list", "--status", "running")
        assert listed.returncode == 0, listed.stderr
        assert strategy_id in listed.stdout and "dca" in listed.stdout
        shown = cli(engine, "strategies", "show", strategy_id)
        assert shown.returncode == 0 and f"dca-{strategy_id}" in shown.stdout and "created" in shown.stdout
        cancelled = cli(engine, "strategies", "cancel", strategy_id)
        assert cancelled.returncode == 0, cancelled.stderr
        async with asyncio.timeout(30):
            while (await client.get(f"/strategies/{strategy_id}")).json()["status"] != "CANCELLED":
                await asyncio.sleep(0.1)
        again = cli(engine, "strategies", "cancel", strategy_id)
        assert again.returncode == 1 and "already ended" in again.stderr
    assert cli(engine, "strategies", "list", "--status", "bogus").returncode != 0
