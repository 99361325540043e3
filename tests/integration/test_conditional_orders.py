"""Stop-loss, take-profit and trailing-stop orders on the real engine: they wait with their
funds reserved, fire on the move they watch for and never on the opposite one, and a
trigger that would fire at once is refused with the price now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from devstack import InfraUrls
from tests.http import is_problem
from tests.integration.test_orders_api import wait_terminal
from tests.keys import auth, create_test_key

pytestmark = pytest.mark.usefixtures("worker")
PAIR = "SOL/USDT"  # these tests move it; others trade SOL/USDC
# Held to that pair's pools: an order that may route through USDC is priced by that route,
# which a move of SOL/USDT alone leaves where it was (tests/unit/test_watcher.py).
DIRECT = {"max_hops": 1}


@pytest.fixture
async def trader(api_url: str, infra: InfraUrls) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_test_key(infra.database_url, "stopper")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        yield client


async def price_now(client: httpx.AsyncClient, amount: str = "10") -> Decimal:
    quote = (
        await client.post(
            "/quotes", json={"token_in": "SOL", "token_out": "USDT", "amount": amount, **DIRECT}
        )
    ).json()
    return Decimal(quote["price"])


async def place(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post(
        "/orders", json={"token_in": "SOL", "token_out": "USDT", "amount": "10", **DIRECT, **fields}
    )


async def move(operator: httpx.AsyncClient, bps: int) -> None:
    moved = await operator.post("/sim/price", json={"pair": PAIR, "move_bps": bps})
    assert moved.status_code == 200, moved.text


async def status_of(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    return (await client.get(f"/orders/{order_id}")).json()  # type: ignore[no-any-return]


async def wait_waiting(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    for _ in range(200):
        order = await status_of(client, order_id)
        if order["status"] == "WAITING":
            return order
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id} never waited")


async def test_a_trigger_that_would_fire_at_once_is_refused_with_the_price(trader: httpx.AsyncClient) -> None:
    now = await price_now(trader)
    stop = await place(
        trader, type="stop_loss", trigger_price=str((now * Decimal("1.01")).quantize(Decimal("0.01")))
    )
    take = await place(
        trader, type="take_profit", trigger_price=str((now * Decimal("0.99")).quantize(Decimal("0.01")))
    )
    for refused in (stop, take):
        assert is_problem(refused, 422, "trigger_would_fire"), refused.text
        assert str(now)[:5] in refused.json()["detail"]  # says what the price is now
    for fields, code in (
        ({"type": "stop_loss"}, "invalid_trigger_price"),
        ({"type": "trailing_stop"}, "invalid_trailing_bps"),
        ({"type": "trailing_stop", "trailing_bps": 5}, "invalid_trailing_bps"),
        ({"type": "market", "trigger_price": "100"}, "invalid_trigger_price"),
    ):
        assert is_problem(await place(trader, **fields), 422, code)


async def test_a_stop_loss_fires_on_a_fall_and_never_on_a_rise(
    trader: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    now = await price_now(trader)
    trigger = (now * Decimal("0.98")).quantize(Decimal("0.01"))
    before = (await trader.get("/wallet")).json()
    placed = await place(trader, type="stop_loss", trigger_price=str(trigger), slippage_bps=300)
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    waiting = await wait_waiting(trader, order_id)
    assert Decimal(waiting["trigger_price"]) == trigger
    sol = next(b for b in (await trader.get("/wallet")).json()["balances"] if b["token"] == "SOL")
    sol_before = next(b for b in before["balances"] if b["token"] == "SOL")
    assert Decimal(sol["reserved"]) > Decimal(sol_before["reserved"]) + 10  # its 10 SOL and fee budget

    await move(operator, 300)  # up: a stop never fires on a rise
    events = (await trader.get(f"/orders/{order_id}/events")).json()["items"]
    assert (await status_of(trader, order_id))["status"] == "WAITING"
    assert any(e.get("data", {}).get("waiting_for", {}).get("trigger_price") == str(trigger) for e in events)

    await move(operator, -600)  # down past the trigger
    order = await wait_terminal(trader, order_id)
    assert order["status"] == "CONFIRMED"
    await move(operator, 300)


async def test_a_take_profit_fires_on_a_rise(trader: httpx.AsyncClient, operator: httpx.AsyncClient) -> None:
    now = await price_now(trader)
    trigger = (now * Decimal("1.02")).quantize(Decimal("0.01"))
    placed = await place(trader, type="take_profit", trigger_price=str(trigger))
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    await wait_waiting(trader, order_id)
    await move(operator, -300)
    assert (await status_of(trader, order_id))["status"] == "WAITING"
    await move(operator, 700)
    order = await wait_terminal(trader, order_id)
    assert order["status"] == "CONFIRMED" and Decimal(order["executed_price"]) >= trigger * Decimal("0.99")
    await move(operator, -400)


async def test_a_trailing_stop_raises_its_trigger_and_fires_below_its_best(
    trader: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    placed = await place(trader, type="trailing_stop", trailing_bps=200, slippage_bps=300)
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    first = await wait_waiting(trader, order_id)
    start = Decimal(first["trigger_price"])
    assert Decimal(first["peak_price"]) * Decimal("0.98") == pytest.approx(start, rel=Decimal("1e-12"))

    await move(operator, 300)  # the best price rises: so does the trigger
    for _ in range(100):
        raised = await status_of(trader, order_id)
        if Decimal(raised["trigger_price"]) > start:
            break
        await asyncio.sleep(0.1)
    assert Decimal(raised["trigger_price"]) > start and raised["status"] == "WAITING"

    await move(operator, -500)  # ≈ 5 % off its best
    order = await wait_terminal(trader, order_id)
    assert order["status"] == "CONFIRMED"
    await move(operator, 200)


async def test_a_cancelled_stop_gives_its_reservation_back(trader: httpx.AsyncClient) -> None:
    now = await price_now(trader)
    placed = await place(
        trader, type="stop_loss", trigger_price=str((now * Decimal("0.5")).quantize(Decimal("0.01")))
    )
    order_id = placed.json()["order_id"]
    await wait_waiting(trader, order_id)
    reserved = Decimal(
        next(b for b in (await trader.get("/wallet")).json()["balances"] if b["token"] == "SOL")["reserved"]
    )
    assert (await trader.post(f"/orders/{order_id}/cancel")).status_code == 202
    assert (await wait_terminal(trader, order_id))["status"] == "CANCELLED"
    after = Decimal(
        next(b for b in (await trader.get("/wallet")).json()["balances"] if b["token"] == "SOL")["reserved"]
    )
    assert after < reserved
