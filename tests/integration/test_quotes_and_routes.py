"""Quotes, exact-out and multi-hop orders over HTTP, on the real engine: a quote reserves
nothing and places at most one order, within its bounds; exact-out receives exactly its
amount; a pair without a direct pool trades through others in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from devstack import InfraUrls
from storage.database import create_engine
from tests.http import is_problem
from tests.integration.test_orders_api import wait_terminal
from tests.keys import auth, create_test_key

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def quoter(api_url: str, infra: InfraUrls) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_test_key(infra.database_url, "quoter")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        yield client


@pytest.fixture
async def stranger(api_url: str, infra: InfraUrls) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_test_key(infra.database_url, "stranger")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        yield client


async def wallet(client: httpx.AsyncClient, column: str = "total") -> dict[str, Decimal]:
    answer = (await client.get("/wallet")).json()
    return {b["token"]: Decimal(b[column]) for b in answer["balances"]}


async def test_a_quote_answers_the_route_bounds_and_fees_and_reserves_nothing(
    quoter: httpx.AsyncClient,
) -> None:
    before = await wallet(quoter, "available")
    answer = await quoter.post(
        "/quotes", json={"token_in": "BONK", "token_out": "USDC", "amount": "100000000"}
    )
    assert answer.status_code == 200, answer.text
    quote = answer.json()
    assert quote["quote_id"].startswith("qt_") and quote["swap_mode"] == "exact_in"
    hops = [(leg["token_in"], leg["token_out"]) for leg in quote["route"]]
    assert hops[0][0] == "BONK" and hops[-1][1] == "USDC" and len(set(hops)) >= 2  # BONK has no USDC pool
    legs = quote["route"]
    assert all(
        {"dex", "pool", "amount_in", "amount_out", "fee_amount", "percent"} <= set(leg) for leg in legs
    )
    assert Decimal(quote["min_amount_out"]) < Decimal(quote["amount_out"])
    assert quote["fees"]["network_lamports"] == 5_000 and quote["fees"]["priority_lamports"] > 0
    assert await wallet(quoter, "available") == before  # nothing reserved, nothing placed


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"dexes": ["orca"]}, "unknown_dex"),
        ({"max_hops": 0}, "invalid_max_hops"),
        ({"max_hops": 4}, "invalid_max_hops"),
        ({"token_in": "BONK", "max_hops": 1}, "unsupported_pair"),
        ({"swap_mode": "exact_out", "amount": "100000000000"}, "insufficient_liquidity"),
    ],
)
async def test_bad_quotes_are_422_with_a_code(
    quoter: httpx.AsyncClient, fields: dict[str, object], code: str
) -> None:
    answer = await quoter.post(
        "/quotes", json={"token_in": "SOL", "token_out": "USDC", "amount": "1", **fields}
    )
    assert is_problem(answer, 422, code), answer.text


async def test_an_order_from_a_quote_runs_the_quoted_route_once(
    quoter: httpx.AsyncClient, stranger: httpx.AsyncClient
) -> None:
    quote = (
        await quoter.post("/quotes", json={"token_in": "SOL", "token_out": "USDC", "amount": "2"})
    ).json()
    assert is_problem(
        await stranger.post("/orders", json={"quote_id": quote["quote_id"]}), 404, "quote_not_found"
    )
    contradicting = await quoter.post("/orders", json={"quote_id": quote["quote_id"], "amount": "3"})
    assert is_problem(contradicting, 422, "quote_mismatch"), contradicting.text

    headers = {"Idempotency-Key": "from-a-quote"}
    placed = await quoter.post("/orders", json={"quote_id": quote["quote_id"]}, headers=headers)
    again = await quoter.post("/orders", json={"quote_id": quote["quote_id"]}, headers=headers)
    assert placed.status_code == 202, placed.text
    assert again.status_code == 200 and again.json()["order_id"] == placed.json()["order_id"]
    used = await quoter.post("/orders", json={"quote_id": quote["quote_id"]})
    assert is_problem(used, 409, "quote_used"), used.text

    order = await wait_terminal(quoter, placed.json()["order_id"])
    assert order["status"] == "CONFIRMED" and order["quote_id"] == quote["quote_id"]
    quoted_route = [(leg["pool"], leg["amount_in"]) for leg in quote["route"]]
    assert [(leg["pool"], leg["amount_in"]) for leg in order["route"]] == quoted_route
    assert Decimal(order["amount_out"]) >= Decimal(quote["min_amount_out"])


async def test_an_expired_quote_places_nothing(quoter: httpx.AsyncClient, infra: InfraUrls) -> None:
    quote = (
        await quoter.post("/quotes", json={"token_in": "SOL", "token_out": "USDT", "amount": "1"})
    ).json()
    engine = create_engine(infra.database_url)
    try:  # 30 s later, without waiting them
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE quotes SET expires_at = now() - interval '1 second' WHERE id = :id"),
                {"id": quote["quote_id"]},
            )
    finally:
        await engine.dispose()
    before = await wallet(quoter, "available")
    expired = await quoter.post("/orders", json={"quote_id": quote["quote_id"]})
    assert is_problem(expired, 422, "quote_expired"), expired.text
    assert await wallet(quoter, "available") == before


async def test_an_exact_out_order_receives_exactly_its_amount(quoter: httpx.AsyncClient) -> None:
    before = await wallet(quoter)
    placed = await quoter.post(
        "/orders",
        json={
            "token_in": "SOL",
            "token_out": "USDC",
            "amount": "1234.5",
            "swap_mode": "exact_out",
            "slippage_bps": 100,
        },
    )
    assert placed.status_code == 202, placed.text
    order = await wait_terminal(quoter, placed.json()["order_id"])
    after = await wallet(quoter)

    assert order["status"] == "CONFIRMED" and order["swap_mode"] == "exact_out"
    assert Decimal(order["amount_out"]) == Decimal("1234.5") == after["USDC"] - before["USDC"]
    spent = Decimal(order["amount_in"])
    assert 0 < spent <= Decimal(order["max_amount_in"])
    assert before["SOL"] - after["SOL"] == spent + Decimal(order["fees"]["total_sol"])


async def test_a_pair_without_a_pool_trades_through_others_in_one_transaction(
    quoter: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    funded = await operator.post("/sim/wallet", json={"owner": "quoter", "token": "JUP", "amount": "1000"})
    assert funded.status_code == 200, funded.text
    before = await wallet(quoter)
    placed = await quoter.post("/orders", json={"token_in": "JUP", "token_out": "SOL", "amount": "500"})
    assert placed.status_code == 202, placed.text
    order = await wait_terminal(quoter, placed.json()["order_id"])
    txs = (await quoter.get("/chain/transactions", params={"order_id": order["order_id"]})).json()["items"]
    after = await wallet(quoter)

    assert order["status"] == "CONFIRMED"
    [tx] = txs  # all hops in one transaction
    assert tx["legs"][0]["token_in"] == "JUP" and tx["legs"][-1]["token_out"] == "SOL"
    assert {leg["hop"] for leg in tx["legs"]} == {0, 1}
    assert before["JUP"] - after["JUP"] == Decimal("500")
    assert after["SOL"] - before["SOL"] == Decimal(order["amount_out"]) - Decimal(order["fees"]["total_sol"])
    assert after.get("USDC") == before.get("USDC")  # the intermediate token only passes through


async def test_a_limit_order_on_a_pair_without_a_pool_fills_through_others(
    quoter: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    funded = await operator.post("/sim/wallet", json={"owner": "quoter", "token": "JUP", "amount": "100"})
    assert funded.status_code == 200, funded.text
    quote = (
        await quoter.post("/quotes", json={"token_in": "JUP", "token_out": "SOL", "amount": "100"})
    ).json()
    limit = (Decimal(quote["price"]) * Decimal("1.03")).quantize(Decimal("0.000000001"))
    placed = await quoter.post(
        "/orders",
        json={
            "type": "limit",
            "token_in": "JUP",
            "token_out": "SOL",
            "amount": "100",
            "limit_price": str(limit),
        },
    )
    assert placed.status_code == 202, placed.text
    # JUP gets dearer in USDC: the JUP → USDC → SOL route now pays the limit.
    moved = await operator.post("/sim/price", json={"pair": "JUP/USDC", "move_bps": 800})
    assert moved.status_code == 200, moved.text
    order = await wait_terminal(quoter, placed.json()["order_id"])
    assert order["status"] == "CONFIRMED", order
    assert Decimal(order["executed_price"]) >= limit
    await operator.post("/sim/price", json={"pair": "JUP/USDC", "move_bps": -740})  # roughly back
