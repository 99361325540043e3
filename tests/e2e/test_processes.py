"""The engine as real processes: two `order-engine api` and one `order-engine worker`
on their own embedded infra. An order placed through one API streams from the other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, EngineProcesses
from tests.keys import ALICE, KEY_SECRET_ENV, auth
from tests.streams import read_stream


@pytest.fixture(scope="module")
def engine_processes(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    engine = EngineProcesses(
        stack.urls,
        tmp_path_factory.mktemp("e2e-logs"),
        {
            **QUIET_MARKET,
            **KEY_SECRET_ENV,
            "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "20",
            "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "1000",
        },
    )
    try:
        engine.start("worker")
        yield [str(engine.start("api").url), str(engine.start("api").url)]
    finally:
        engine.stop()


async def test_an_order_placed_on_one_api_streams_whole_from_another(engine_processes: list[str]) -> None:
    api_a, api_b = engine_processes
    async with httpx.AsyncClient(base_url=api_a, timeout=30, headers=auth(ALICE)) as client:
        accepted = (
            await client.post("/orders", json={"token_in": "SOL", "token_out": "USDC", "amount": "2"})
        ).json()
    order_id = accepted["order_id"]

    # Subscribed on B while the order runs: every event, in order, then close 1000.
    stream = await asyncio.wait_for(read_stream(api_b, f"orderId={order_id}&after_seq=0"), 60)
    stream.frames[0]["seq"] = 0
    stream.assert_gap_free()
    assert stream.close_code == 1000
    assert stream.events[-1]["status"] == "CONFIRMED"
    assert [e["status"] for e in stream.events][:2] == ["PENDING", "ROUTING"]

    async with httpx.AsyncClient(base_url=api_b, timeout=30, headers=auth(ALICE)) as client:
        order = (await client.get(f"/orders/{order_id}")).json()
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
    assert order["status"] == "CONFIRMED" and [t["tx_hash"] for t in txs] == [order["tx_hash"]]


async def test_live_events_reach_a_subscriber_on_the_other_api(engine_processes: list[str]) -> None:
    api_a, api_b = engine_processes
    async with httpx.AsyncClient(base_url=api_a, timeout=30, headers=auth(ALICE)) as client:
        order_id = (
            await client.post("/orders", json={"token_in": "USDC", "token_out": "SOL", "amount": "300"})
        ).json()["order_id"]
    stream = await asyncio.wait_for(read_stream(api_b, f"orderId={order_id}"), 60)
    # The snapshot is taken before the order finishes (execution takes ~1 s), so
    # the terminal event can only have arrived live, through Redis, from the worker.
    assert stream.snapshot["status"] != "CONFIRMED"
    stream.assert_gap_free()
    assert stream.events[-1]["status"] == "CONFIRMED"
