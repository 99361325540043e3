"""Driving the market over HTTP: price moves, late listings, slippage and its retry."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from devstack import InfraUrls
from tests.conftest import isolated_engine
from tests.integration.test_orders_api import wait_terminal
from tests.keys import OPERATOR, auth, create_test_key
from tests.streams import TERMINAL, ws_url

pytestmark = pytest.mark.usefixtures("worker")


async def markets(client: httpx.AsyncClient, pair: str) -> dict[str, dict[str, Any]]:
    items = (await client.get("/markets")).json()["items"]
    return {m["dex"]: m for m in items if m["pair"] == pair}


# At least the move asked for, but the mid prices shown are rounded to their last digit.
ROUNDING = Decimal("1e-9")


async def test_price_moves_by_trading_against_the_pools(
    client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    before = await markets(client, "SOL/USDT")
    response = await operator.post(
        "/sim/price", json={"pair": "SOL/USDT", "move_bps": -300, "dex": "raydium"}
    )
    assert response.status_code == 200, response.text
    [moved] = response.json()["items"]
    assert moved["dex"] == "raydium" and moved["token_in"] == "SOL"
    after = await markets(client, "SOL/USDT")
    ratio = Decimal(after["raydium"]["mid_price"]) / Decimal(before["raydium"]["mid_price"])
    assert Decimal("0.968") < ratio <= Decimal("0.970") * (1 + ROUNDING)
    assert after["meteora"]["mid_price"] == before["meteora"]["mid_price"]

    up = await operator.post("/sim/price", json={"pair": "SOL/USDT", "move_bps": 200})
    assert {m["dex"] for m in up.json()["items"]} == {"raydium", "meteora"}
    for item in up.json()["items"]:
        ratio = Decimal(item["mid_price_after"]) / Decimal(item["mid_price_before"])
        assert ratio >= Decimal("1.02") * (1 - ROUNDING)


@pytest.mark.parametrize(
    "body",
    [
        {"pair": "SOL/NOPE", "move_bps": 100},
        {"pair": "SOL/USDC", "move_bps": 0},
        {"pair": "SOL/USDC", "move_bps": 9000},
        {"pair": "SOL/USDC", "move_bps": "100"},
        {"pair": "SOL/USDC", "move_bps": 100, "dex": "orca"},
    ],
)
async def test_bad_price_moves_are_problems(operator: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await operator.post("/sim/price", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_token_listed_later_trades_once_its_pool_opens(
    client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    listed = await operator.post(
        "/sim/pools",
        json={
            "token": "OPENNOW",
            "dex": "raydium",
            "quote_token": "SOL",
            "liquidity": "1000",
            "activation_in_s": 0,
        },
    )
    assert listed.status_code == 201, listed.text
    token = listed.json()["token"]
    assert token["symbol"] == "OPENNOW" and token["decimals"] == 6
    assert token in (await client.get("/tokens")).json()["items"]
    again = await operator.post(
        "/sim/pools", json={"token": "OPENNOW", "dex": "raydium", "quote_token": "SOL", "liquidity": "5"}
    )
    assert again.status_code == 409

    order = await client.post("/orders", json={"token_in": "SOL", "token_out": "OPENNOW", "amount": "2"})
    assert order.status_code == 202, order.text
    done = await wait_terminal(client, order.json()["order_id"])
    assert done["status"] == "CONFIRMED" and done["selected_dex"] == "raydium"
    # 2 SOL at 0.0001 SOL per token: a bit under 20 000 tokens after fee and impact.
    assert Decimal("19000") < Decimal(done["amount_out"]) < Decimal("20000")


async def test_a_pool_that_has_not_opened_cannot_be_traded(
    client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    listed = await operator.post(
        "/sim/pools",
        json={
            "token": "LATER",
            "dex": "meteora",
            "quote_token": "USDC",
            "liquidity": "50000",
            "price": "2",
            "activation_in_s": 3600,
        },
    )
    assert listed.status_code == 201, listed.text
    [pool] = [m for m in (await client.get("/markets")).json()["items"] if m["pair"] == "LATER/USDC"]
    assert pool["opens_at"] is not None
    order = await client.post("/orders", json={"token_in": "USDC", "token_out": "LATER", "amount": "10"})
    done = await wait_terminal(client, order.json()["order_id"])
    assert done["status"] == "FAILED" and "POOL_NOT_OPEN" in done["failure_reason"]


@pytest.mark.parametrize("simulate", [True, False], ids=["simulated", "sent-unsimulated"])
async def test_slippage_from_a_trade_before_landing_retries_with_a_fresh_quote(
    infra: InfraUrls, tmp_path: Path, simulate: bool
) -> None:
    """Someone dumps SOL after we quoted. Simulated first, the transaction is never sent
    and pays nothing; sent as is, it lands, fails on chain and pays its fee. Either way
    the next attempt re-quotes and fills, and the wallet moves by the fill and the fees."""
    owner = f"slipper-{int(simulate)}"
    key = await create_test_key(infra.database_url, owner)
    # Execution takes seconds here, so a large trade can land between quote and landing.
    async with isolated_engine(infra, tmp_path, ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS=4000) as api_url:
        async with (
            httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client,
            httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(OPERATOR)) as operator,
        ):
            before = await sol_total(client)
            order_id = (
                await client.post(
                    "/orders",
                    json={
                        "token_in": "SOL",
                        "token_out": "USDC",
                        "amount": "20",
                        "slippage_bps": 30,
                        "simulate": simulate,
                        "max_hops": 1,  # the pair's own pools, which the dump moves
                    },
                )
            ).json()["order_id"]
            events: list[dict[str, Any]] = []
            async with connect(ws_url(api_url, f"orderId={order_id}", key)) as ws:
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] != "EVENT":
                        continue
                    events.append(frame)
                    if frame["status"] == "BUILDING" and frame["data"].get("attempt") == 1:
                        moved = await operator.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": -400})
                        assert moved.status_code == 200
                    if frame["status"] in TERMINAL:
                        break
            order = (await client.get(f"/orders/{order_id}")).json()
            timeline = (await client.get(f"/orders/{order_id}/events")).json()["items"]
            after = await sol_total(client)

    retries = [e["data"]["retry"] for e in events if "retry" in e["data"]]
    step = "submit_transaction" if simulate else "confirm_transaction"
    assert [(r["activity"], r["attempt"]) for r in retries] == [(step, 1)]
    assert "SLIPPAGE_EXCEEDED" in retries[0]["reason"]
    assert [e["data"]["attempt"] for e in events if e["status"] == "ROUTING"] == [1, 2]
    assert events[-1]["status"] == "CONFIRMED"
    assert order["attempts"] == 2
    [failure] = [i for i in timeline if i["type"] == "FAILURE"]
    assert failure["code"] == "SLIPPAGE_EXCEEDED"
    if simulate:
        assert (failure["stage"], failure["fee_lamports"]) == ("simulation", 0)
    else:
        assert failure["stage"] == "chain" and failure["fee_lamports"] >= 5_000
    fees = order["fees"]
    paid = fees["network_lamports"] + fees["priority_lamports"] + fees["tip_lamports"]
    assert Decimal(fees["total_sol"]) == Decimal(paid).scaleb(-9)
    # To the lamport: the fill and both attempts' fees, nothing else.
    assert before - after == 20 * 10**9 + paid + failure["fee_lamports"]


async def sol_total(client: httpx.AsyncClient) -> int:
    """The wallet's SOL total in lamports."""
    wallet = (await client.get("/wallet")).json()
    sol = next(b for b in wallet["balances"] if b["token"] == "SOL")
    return int(Decimal(sol["total"]).scaleb(9))
