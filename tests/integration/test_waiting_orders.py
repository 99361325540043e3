"""Limit and sniper orders: WAITING on durable timers and signals, cancel and expiry."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import InfraUrls
from tests.conftest import isolated_engine
from tests.integration.test_orders_api import wait_terminal
from tests.keys import ALICE, OPERATOR, auth, create_test_key
from tests.streams import read_stream

pytestmark = pytest.mark.usefixtures("worker")


async def wait_status(client: httpx.AsyncClient, order_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while (order := (await client.get(f"/orders/{order_id}")).json())["status"] != status:
            await asyncio.sleep(0.05)
    return dict(order)


async def jup_price(client: httpx.AsyncClient) -> Decimal:
    items = (await client.get("/markets")).json()["items"]
    return max(Decimal(m["mid_price"]) for m in items if m["pair"] == "JUP/USDC")


async def test_a_limit_order_waits_then_fills_when_the_price_reaches_it(
    client: httpx.AsyncClient, operator: httpx.AsyncClient, api_url: str
) -> None:
    # Buy JUP with USDC once 100 USDC pay 2 % more JUP than now.
    limit = (1 / await jup_price(client) * Decimal("1.02")).quantize(Decimal("0.0001"))
    body = {
        "type": "limit",
        "token_in": "USDC",
        "token_out": "JUP",
        "amount": "100",
        "limit_price": str(limit),
    }
    order_id = (await client.post("/orders", json=body)).json()["order_id"]
    waiting = await wait_status(client, order_id, "WAITING")
    assert waiting["limit_price"] == str(limit)

    snapshot = (await read_stream(api_url, f"orderId={order_id}", until_frames=1)).snapshot
    assert snapshot["status"] == "WAITING"
    events = (await client.get(f"/orders/{order_id}/events")).json()["items"]
    assert events[-1]["data"]["waiting_for"] == {"limit_price": str(limit), "pair": "USDC/JUP"}

    moved = await operator.post("/sim/price", json={"pair": "JUP/USDC", "move_bps": -500})
    assert moved.status_code == 200
    done = await wait_terminal(client, order_id)
    assert done["status"] == "CONFIRMED"
    assert Decimal(done["executed_price"]) >= limit
    assert Decimal(done["min_amount_out"]) >= limit * 100


async def test_a_limit_order_expires_at_its_deadline(client: httpx.AsyncClient) -> None:
    body = {
        "type": "limit",
        "token_in": "SOL",
        "token_out": "USDC",
        "amount": "1",
        "limit_price": "100000",
        "expires_in_s": 1,
    }
    order_id = (await client.post("/orders", json=body)).json()["order_id"]
    done = await wait_terminal(client, order_id)
    assert done["status"] == "EXPIRED"
    txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
    assert txs == []


async def test_a_sniper_buys_as_soon_as_the_pool_opens(
    client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    body = {"type": "sniper", "token_in": "SOL", "token_out": "SNIPED", "amount": "1", "slippage_bps": 300}
    response = await client.post("/orders", json=body)
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    await wait_status(client, order_id, "WAITING")
    listed = await operator.post(
        "/sim/pools",
        json={
            "token": "SNIPED",
            "dex": "raydium",
            "quote_token": "SOL",
            "liquidity": "500",
            "activation_in_s": 1,
        },
    )
    assert listed.status_code == 201
    done = await wait_terminal(client, order_id)
    assert done["status"] == "CONFIRMED" and done["selected_dex"] == "raydium"
    events = (await client.get(f"/orders/{order_id}/events")).json()["items"]
    assert (
        next(e for e in events if e.get("status") == "WAITING")["data"]["waiting_for"]["pool_open"]
        == "SNIPED"
    )


async def test_cancel_wins_while_waiting_and_loses_once_terminal(client: httpx.AsyncClient) -> None:
    body = {"type": "limit", "token_in": "SOL", "token_out": "USDC", "amount": "1", "limit_price": "100000"}
    order_id = (await client.post("/orders", json=body)).json()["order_id"]
    await wait_status(client, order_id, "WAITING")
    cancel = await client.post(f"/orders/{order_id}/cancel")
    assert cancel.status_code == 202, cancel.text
    done = await wait_terminal(client, order_id)
    assert done["status"] == "CANCELLED"
    again = await client.post(f"/orders/{order_id}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "order_not_cancellable"
    assert (await client.post("/orders/ord_01J00000000000000000000000/cancel")).status_code == 404


async def test_cancel_loses_once_the_order_is_executing(infra: InfraUrls, tmp_path: Path) -> None:
    async with isolated_engine(infra, tmp_path, ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS=4000) as api_url:
        async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(ALICE)) as client:
            body = {"token_in": "SOL", "token_out": "USDC", "amount": "1"}
            order_id = (await client.post("/orders", json=body)).json()["order_id"]
            await wait_status(client, order_id, "SUBMITTED")
            cancel = await client.post(f"/orders/{order_id}/cancel")
            assert cancel.status_code == 409 and cancel.json()["code"] == "order_not_cancellable"
            assert (await wait_terminal(client, order_id))["status"] == "CONFIRMED"


async def test_a_trailing_stop_fires_while_another_owners_limits_take_the_watchers_budget(
    infra: InfraUrls, tmp_path: Path
) -> None:
    # The case, on a watcher whose tick budget buys about one order's turn: Alice's
    # USDC → JUP limits each sit between what its own amount fetches and what the first
    # unit does, so each needs a route of its own every tick; Bob's trailing stop on
    # SOL/USDC must still follow the price and fire on a 3 % fall.
    async with isolated_engine(infra, tmp_path, ORDER_ENGINE_WATCHER_TICK_BUDGET_MS=0.001) as api_url:
        bob = await create_test_key(infra.database_url, "bob-trailing")
        async with (
            httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(ALICE)) as alice,
            httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(bob)) as bobs,
            httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(OPERATOR)) as operator,
        ):

            async def jup_per_usdc(amount: Decimal) -> Decimal:
                body = {"token_in": "USDC", "token_out": "JUP", "amount": str(amount)}
                return Decimal((await alice.post("/quotes", json=body)).json()["price"])

            first_unit = await jup_per_usdc(Decimal(1))
            limits = []
            for n in range(30):
                amount = Decimal(1000 + 10 * n)
                between = ((await jup_per_usdc(amount) + first_unit) / 2).quantize(Decimal("1e-12"))
                body = {"type": "limit", "token_in": "USDC", "token_out": "JUP", "amount": str(amount)}
                placed = await alice.post("/orders", json={**body, "limit_price": str(between)})
                assert placed.status_code == 202, placed.text
                limits.append(placed.json()["order_id"])
            # On the SOL/USDC pools only (max_hops 1): the move below is theirs alone, and a
            # route through USDT would still pay the old price.
            body = {"type": "trailing_stop", "token_in": "SOL", "token_out": "USDC", "amount": "1"}
            placed = await bobs.post("/orders", json={**body, "trailing_bps": 200, "max_hops": 1})
            assert placed.status_code == 202, placed.text
            trailing = placed.json()["order_id"]
            for order_id in [*limits, trailing]:
                await wait_status(alice if order_id != trailing else bobs, order_id, "WAITING")
            try:
                moved = await operator.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": -300})
                assert moved.status_code == 200
                assert (await wait_terminal(bobs, trailing, timeout=60))["status"] == "CONFIRMED"
                # Alice's limits were neither reached nor signalled: they still wait.
                statuses = {(await alice.get(f"/orders/{o}")).json()["status"] for o in limits}
                assert statuses == {"WAITING"}
            finally:
                await operator.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": 300})
                for order_id in limits:
                    await alice.post(f"/orders/{order_id}/cancel")


async def test_a_limit_held_to_one_venue_is_not_woken_by_another_venues_price(
    client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    # Buy RAY with USDC once 10 USDC fetch 3 % more RAY than now; RAY then falls 8 % on
    # Meteora alone. The order that may take Meteora fires; the one held to Raydium is
    # never woken (it would route, miss its limit and wait again, spending admission).
    quote = {"token_in": "USDC", "token_out": "RAY", "amount": "10", "max_hops": 1}
    price = Decimal((await client.post("/quotes", json=quote)).json()["price"])
    body = {**quote, "type": "limit", "limit_price": str((price * Decimal("1.03")).quantize(Decimal("1e-9")))}
    anywhere = (await client.post("/orders", json=body)).json()["order_id"]
    raydium = (await client.post("/orders", json={**body, "dexes": ["raydium"]})).json()["order_id"]
    for order_id in (anywhere, raydium):
        await wait_status(client, order_id, "WAITING")
    moved = await operator.post("/sim/price", json={"pair": "RAY/USDC", "move_bps": -800, "dex": "meteora"})
    assert moved.status_code == 200, moved.text
    try:
        assert (await wait_terminal(client, anywhere))["status"] == "CONFIRMED"
        events = (await client.get(f"/orders/{raydium}/events")).json()["items"]
        assert [e["status"] for e in events if e.get("status")] == ["PENDING", "WAITING"], events
    finally:
        await operator.post("/sim/price", json={"pair": "RAY/USDC", "move_bps": 800, "dex": "meteora"})
        await client.post(f"/orders/{raydium}/cancel")
