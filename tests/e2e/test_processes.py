"""The engine as real processes: two `order-engine api` and one `order-engine worker`
on their own embedded infra. An order placed through one API streams from the other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, EngineProcesses
from tests.keys import ALICE, KEY_SECRET_ENV, auth, create_test_key
from tests.streams import TERMINAL, read_stream


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


async def test_concurrent_orders_on_two_apis_never_overspend_and_move_exactly_their_fills_and_fees(
    engine_processes: list[str], stack: EmbeddedStack
) -> None:
    key = await create_test_key(stack.urls.database_url, "hank")  # a new owner: 10 000 SOL at first use
    order = {"token_in": "SOL", "token_out": "USDC", "amount": "300", "slippage_bps": 500}
    clients = [httpx.AsyncClient(base_url=url, timeout=60, headers=auth(key)) for url in engine_processes]
    try:
        before = await balances(clients[0])
        # 40 × 300 SOL asked for at once, through both APIs, from 10 000 SOL.
        answers = await asyncio.gather(*(clients[n % 2].post("/orders", json=order) for n in range(40)))
        accepted = [a.json()["order_id"] for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code != 202]
        assert 0 < len(accepted) < 40 and refused  # it cannot all fit
        assert all(a.status_code == 422 and a.json()["code"] == "insufficient_funds" for a in refused)
        while True:
            wallet = await balances(clients[1])
            assert all(b["available"] >= 0 for b in wallet.values())  # never below zero
            orders = [(await clients[0].get(f"/orders/{oid}")).json() for oid in accepted]
            if all(o["status"] in TERMINAL for o in orders):
                break
            await asyncio.sleep(0.5)
        after = await balances(clients[0])
        failed_fees = 0  # transactions that landed and failed paid too
        for order_id in accepted:
            timeline = (await clients[0].get(f"/orders/{order_id}/events")).json()["items"]
            failed_fees += sum(i["fee_lamports"] for i in timeline if i["type"] == "FAILURE")
    finally:
        for client in clients:
            await client.aclose()
    confirmed = [o for o in orders if o["status"] == "CONFIRMED"]
    assert confirmed, [o["failure_reason"] for o in orders]
    # 33 × 300 fit in 10 000, a 34th does not: more were accepted only if one that
    # failed gave its reservation back in the meantime.
    assert len(accepted) <= 33 + (len(orders) - len(confirmed))
    assert len(confirmed) <= 33
    # Every base unit accounted for: total moved by exactly the fills and the fees, nothing
    # left reserved.
    fees = sum(Decimal(o["fees"]["total_sol"]) for o in confirmed) + Decimal(failed_fees).scaleb(-9)
    assert (
        before["SOL"]["total"] - after["SOL"]["total"]
        == sum(Decimal(o["amount_in"]) for o in confirmed) + fees
    )
    assert after["USDC"]["total"] - before["USDC"]["total"] == sum(
        Decimal(o["amount_out"]) for o in confirmed
    )
    assert all(b["reserved"] == 0 for b in after.values())


async def balances(client: httpx.AsyncClient) -> dict[str, dict[str, Decimal]]:
    wallet = (await client.get("/wallet")).json()
    return {
        b["token"]: {k: Decimal(b[k]) for k in ("total", "reserved", "available")} for b in wallet["balances"]
    }
