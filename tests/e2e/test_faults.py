"""Crashes and restarts, with real processes: whatever fails, every accepted order ends
terminal, executes on chain at most once, and its stream has no gaps."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, EngineProcesses
from tests.keys import ALICE, KEY_SECRET_ENV, auth
from tests.streams import TERMINAL, read_stream, ws_url

ORDER = {"token_in": "SOL", "token_out": "USDC", "amount": "0.5", "slippage_bps": 500}


@pytest.fixture
def engine(stack: EmbeddedStack, tmp_path: Path) -> Iterator[EngineProcesses]:
    engine = EngineProcesses(
        stack.urls,
        tmp_path,
        {
            **QUIET_MARKET,
            **KEY_SECRET_ENV,
            "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "50",
            "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "1500",
        },
    )
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture
async def client(engine: EngineProcesses) -> AsyncIterator[httpx.AsyncClient]:
    api = engine.start("api")
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(ALICE)) as client:
        yield client


def descendants(pid: int) -> list[int]:
    """Every process started by `pid`, and by those, by PID (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += parents.get(child, [])
    return found


async def place(client: httpx.AsyncClient, count: int) -> list[str]:
    responses = await asyncio.gather(*(client.post("/orders", json=ORDER) for _ in range(count)))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    return [r.json()["order_id"] for r in responses]


async def wait_until(predicate: Any, timeout: float = 120) -> None:
    """Poll the API (the state lives in other processes) until `predicate()` holds."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def statuses(client: httpx.AsyncClient, order_ids: list[str]) -> dict[str, str]:
    orders = await asyncio.gather(*(client.get(f"/orders/{order_id}") for order_id in order_ids))
    return {o.json()["order_id"]: o.json()["status"] for o in orders}


async def assert_all_executed_once(client: httpx.AsyncClient, order_ids: list[str]) -> None:
    async def all_terminal() -> bool:
        return all(s in TERMINAL for s in (await statuses(client, order_ids)).values())

    await wait_until(all_terminal)
    final = await statuses(client, order_ids)
    assert set(final.values()) == {"CONFIRMED"}, final
    for order_id in order_ids:
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
        assert len(txs) == 1, (order_id, txs)
        timeline = (await client.get(f"/orders/{order_id}/events")).json()["items"]
        seqs = [e["seq"] for e in timeline if e["type"] == "EVENT"]
        assert seqs == list(range(1, len(seqs) + 1)), (order_id, seqs)


async def some_submitted(client: httpx.AsyncClient, order_ids: list[str], at_least: int = 1) -> None:
    async def submitted() -> bool:
        return (
            sum(s in ("SUBMITTED", "CONFIRMED") for s in (await statuses(client, order_ids)).values())
            >= at_least
        )

    await wait_until(submitted)


async def test_a_worker_killed_mid_submit_loses_nothing_and_executes_nothing_twice(
    engine: EngineProcesses, client: httpx.AsyncClient
) -> None:
    doomed = engine.start("worker")
    engine.start("worker")
    order_ids = await place(client, 20)
    await some_submitted(client, order_ids, at_least=2)
    doomed.kill()
    await assert_all_executed_once(client, order_ids)


async def test_a_client_whose_api_dies_mid_stream_resumes_on_another_without_gaps(
    engine: EngineProcesses,
) -> None:
    engine.start("worker")
    doomed, survivor = engine.start("api"), engine.start("api")
    async with httpx.AsyncClient(base_url=str(doomed.url), timeout=30, headers=auth(ALICE)) as client:
        [order_id] = await place(client, 1)
    seen: list[dict[str, Any]] = []
    async with connect(ws_url(str(doomed.url), f"orderId={order_id}&after_seq=0")) as ws:
        seen.append(json.loads(await ws.recv()))  # the snapshot
        seen.append(json.loads(await ws.recv()))  # and the first event
        doomed.kill()
        with pytest.raises(ConnectionClosed):
            while True:
                seen.append(json.loads(await ws.recv()))
    last = max(f["seq"] for f in seen if f["type"] == "EVENT")
    rest = await read_stream(str(survivor.url), f"orderId={order_id}&after_seq={last}")
    events = [f for f in seen if f["type"] == "EVENT"] + rest.events
    assert [e["seq"] for e in events] == list(range(1, events[-1]["seq"] + 1))
    assert events[-1]["status"] == "CONFIRMED" and rest.close_code == 1000


async def test_redis_restart_mid_flight(
    stack: EmbeddedStack, engine: EngineProcesses, client: httpx.AsyncClient
) -> None:
    engine.start("worker")
    order_ids = await place(client, 10)
    await some_submitted(client, order_ids)
    stack.redis.stop()
    stack.redis.start()
    await assert_all_executed_once(client, order_ids)
    # The API's event reader is back: a new order streams whole, live.
    [order_id] = await place(client, 1)
    stream = await read_stream(str(client.base_url), f"orderId={order_id}&after_seq=0")
    stream.frames[0]["seq"] = 0
    stream.assert_gap_free()
    assert stream.events[-1]["status"] == "CONFIRMED"
    redis = Redis.from_url(stack.redis.url)
    try:
        assert not [k for k in [*order_ids, order_id] if await redis.exists(f"active:order:{k}")]
    finally:
        await redis.aclose()


@pytest.mark.parametrize("server", ["redis", "postgres"])
async def test_a_server_that_hangs_makes_requests_fail_fast_not_hang(
    server: str, stack: EmbeddedStack, engine: EngineProcesses, client: httpx.AsyncClient
) -> None:
    # A stopped process keeps its connections open but answers nothing: no reset tells
    # the client, only its own timeouts.
    engine.start("worker")
    [before] = await place(client, 1)
    await assert_all_executed_once(client, [before])  # the worker is up and running
    hung = stack.redis if server == "redis" else stack.postgres
    assert hung.pid is not None
    stopped = [hung.pid, *descendants(hung.pid)]  # PostgreSQL's backends are its children
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        async with asyncio.timeout(15):  # never a hang: an answer, 202 or 503, in seconds
            placed = await client.post("/orders", json=ORDER)
        assert placed.status_code in (202, 503), placed.text
        if placed.status_code == 503:
            assert placed.headers["content-type"].startswith("application/problem+json")
        async with asyncio.timeout(5):
            ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json() == {"status": "not_ready"}
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    if placed.status_code == 202:
        await assert_all_executed_once(client, [placed.json()["order_id"]])
    # Once it is back, a new order streams whole, live.
    [order_id] = await place(client, 1)
    stream = await read_stream(str(client.base_url), f"orderId={order_id}&after_seq=0")
    stream.frames[0]["seq"] = 0
    stream.assert_gap_free()
    assert stream.events[-1]["status"] == "CONFIRMED"


@pytest.mark.parametrize("server", ["postgres", "temporal"])
async def test_a_server_restart_mid_flight(
    server: str, stack: EmbeddedStack, engine: EngineProcesses, client: httpx.AsyncClient
) -> None:
    engine.start("worker")
    order_ids = await place(client, 10)
    await some_submitted(client, order_ids)
    component = stack.postgres if server == "postgres" else stack.temporal
    component.stop()
    component.start()
    await assert_all_executed_once(client, order_ids)


async def test_sigterm_lets_a_worker_finish_and_an_api_say_going_away(
    engine: EngineProcesses, client: httpx.AsyncClient
) -> None:
    worker = engine.start("worker")
    order_ids = await place(client, 5)
    await some_submitted(client, order_ids)
    assert worker.terminate() < 30
    engine.start("worker")
    await assert_all_executed_once(client, order_ids)

    api = engine.start("api")
    [order_id] = await place(client, 1)
    async with connect(ws_url(str(api.url), f"orderId={order_id}")) as ws:
        await ws.recv()
        stopping = asyncio.get_running_loop().run_in_executor(None, api.terminate)
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1001
        await stopping


async def test_a_twap_whose_worker_is_killed_resumes_elsewhere_without_skipping_or_repeating_a_slice(
    engine: EngineProcesses, client: httpx.AsyncClient
) -> None:
    doomed = engine.start("worker")
    created = await client.post(
        "/strategies",
        json={
            "type": "twap",
            "token_in": "SOL",
            "token_out": "USDC",
            "amount": "0.4",
            "slices": 4,
            "interval_s": 1,
            "slippage_bps": 500,
        },
    )
    assert created.status_code == 202, created.text
    strategy_id = created.json()["strategy_id"]

    async def placed(count: int) -> bool:
        return len((await client.get(f"/strategies/{strategy_id}")).json()["orders"]) >= count

    await wait_until(lambda: placed(2))
    doomed.kill()  # mid-TWAP: a slice may be executing, the next timer pending
    engine.start("worker")

    async def ended() -> bool:
        status: str = (await client.get(f"/strategies/{strategy_id}")).json()["status"]
        return status != "RUNNING"

    await wait_until(ended)
    strategy = (await client.get(f"/strategies/{strategy_id}")).json()
    assert strategy["status"] == "COMPLETED", strategy
    orders = [(await client.get(f"/orders/{o}")).json() for o in strategy["orders"]]
    # Four slices, each placed once (its idempotent key), together exactly the amount.
    assert len(orders) == 4 and all(o["status"] == "CONFIRMED" for o in orders)
    assert sum(Decimal(o["amount_in"]) for o in orders) == Decimal("0.4")
    events = (await client.get(f"/strategies/{strategy_id}/events")).json()["items"]
    slices = [e["data"]["slice"] for e in events if e["event"] == "order_placed"]
    assert sorted(slices) == [1, 2, 3, 4]
