"""A retried request never trades twice: the Idempotency-Key is looked up before any
other check (an expired quote, a moved price), POST /strategies takes one too, and no
owner's key can take the place of a strategy's child order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core.domain import StrategyStatus, StrategyType
from core.ids import new_strategy_id
from devstack import InfraUrls
from orders.placement import request_hash
from storage.database import create_engine, create_sessionmaker
from storage.models import Strategy, utcnow
from strategies import repository as strategy_repository
from strategies.schemas import StrategyCreate
from tests.http import is_problem
from tests.integration.test_strategies import wait_status
from tests.keys import auth, create_test_key

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def trader(api_url: str, infra: InfraUrls) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_test_key(infra.database_url, f"retrier-{uuid.uuid4().hex[:8]}")  # its own orders
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        yield client


async def expire_quote(database_url: str, quote_id: str) -> None:
    """Its 30 s passed, without waiting them."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE quotes SET expires_at = now() - interval '1 second' WHERE id = :id"),
                {"id": quote_id},
            )
    finally:
        await engine.dispose()


async def orders_of_owner(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/orders", params={"limit": 200})).json()["items"]
    return items


async def test_a_retried_quote_order_after_the_quote_expired_is_the_same_order(
    trader: httpx.AsyncClient, infra: InfraUrls
) -> None:
    quote = (
        await trader.post("/quotes", json={"token_in": "SOL", "token_out": "USDC", "amount": "0.5"})
    ).json()
    body, key = {"quote_id": quote["quote_id"]}, {"Idempotency-Key": "quote-retry"}
    placed = await trader.post("/orders", json=body, headers=key)
    assert placed.status_code == 202, placed.text
    await expire_quote(infra.database_url, quote["quote_id"])

    retried = await trader.post("/orders", json=body, headers=key)

    assert retried.status_code == 200, retried.text
    assert retried.json()["order_id"] == placed.json()["order_id"]
    assert [o["order_id"] for o in await orders_of_owner(trader)] == [placed.json()["order_id"]]
    # The same key with another body is still refused as such, not as an expired quote.
    other = await trader.post("/orders", json={**body, "slippage_bps": 77}, headers=key)
    assert is_problem(other, 422, "idempotency_key_reused"), other.text
    # Without the key, it is a new request, and the quote placed an order already.
    assert is_problem(await trader.post("/orders", json=body), 409, "quote_used")


async def test_a_retried_stop_loss_after_the_price_crossed_it_is_the_same_order(
    trader: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    # A pool of its own: moving its price disturbs no other test.
    listed = await operator.post(
        "/sim/pools", json={"token": "IDEM", "liquidity": "1000", "price": "0.01", "activation_in_s": 0}
    )
    assert listed.status_code == 201, listed.text
    me = (await trader.get("/wallet")).json()["owner"]
    funded = await operator.post("/sim/wallet", json={"owner": me, "token": "IDEM", "amount": "100"})
    assert funded.status_code == 200, funded.text
    quoted = await trader.post("/quotes", json={"token_in": "IDEM", "token_out": "SOL", "amount": "10"})
    price = Decimal(quoted.json()["price"])
    body = {
        "type": "stop_loss",
        "token_in": "IDEM",
        "token_out": "SOL",
        "amount": "10",
        "trigger_price": str((price * Decimal("0.9")).quantize(Decimal("1e-9"))),
    }
    key = {"Idempotency-Key": "stop-retry"}
    placed = await trader.post("/orders", json=body, headers=key)
    assert placed.status_code == 202, placed.text
    moved = await operator.post("/sim/price", json={"pair": "IDEM/SOL", "move_bps": -3000})
    assert moved.status_code == 200, moved.text

    retried = await trader.post("/orders", json=body, headers=key)

    assert retried.status_code == 200, retried.text
    assert retried.json()["order_id"] == placed.json()["order_id"]
    # A new request would be refused now: its stop would fire at once.
    assert is_problem(await trader.post("/orders", json=body), 422, "trigger_would_fire")


TWAP = {
    "type": "twap",
    "token_in": "SOL",
    "token_out": "USDC",
    "amount": "0.02",
    "slices": 2,
    "interval_s": 2,
}


async def test_a_retried_strategy_starts_once(trader: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "twap-retry"}
    first = await trader.post("/strategies", json=TWAP, headers=key)
    assert first.status_code == 202, first.text
    strategy_id = first.json()["strategy_id"]
    # Retried at once, and again while it runs: the same strategy, never a second one.
    answers = await asyncio.gather(*(trader.post("/strategies", json=TWAP, headers=key) for _ in range(3)))
    for answer in answers:
        assert answer.status_code == 200 or is_problem(answer, 409, "idempotency_request_in_flight"), (
            answer.text
        )
        if answer.status_code == 200:
            assert answer.json() == first.json()
    other = await trader.post("/strategies", json={**TWAP, "slices": 3}, headers=key)
    assert is_problem(other, 422, "idempotency_key_reused"), other.text

    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    again = await trader.post("/strategies", json=TWAP, headers=key)
    assert again.status_code == 200 and again.json()["strategy_id"] == strategy_id, again.text
    strategies = (await trader.get("/strategies")).json()["items"]
    assert [s["strategy_id"] for s in strategies] == [strategy_id]
    assert done["progress"]["orders_placed"] == 2


async def test_a_retry_starts_afresh_what_a_dead_request_stored_but_never_started(
    trader: httpx.AsyncClient, infra: InfraUrls
) -> None:
    owner = (await trader.get("/wallet")).json()["owner"]
    stored = utcnow() - timedelta(seconds=30)  # the first request died 30 s ago, mid-way
    dead = Strategy(
        id=new_strategy_id(),
        owner=owner,
        type=StrategyType.TWAP,
        status=StrategyStatus.RUNNING,
        params={k: v for k, v in TWAP.items() if k != "type"},
        idempotency_key="died-before-start",
        request_hash=request_hash(StrategyCreate.model_validate(TWAP)),
        created_at=stored,
        updated_at=stored,
    )
    engine = create_engine(infra.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            strategy_repository.insert(session, dead)
    finally:
        await engine.dispose()

    retried = await trader.post("/strategies", json=TWAP, headers={"Idempotency-Key": "died-before-start"})

    assert retried.status_code == 202, retried.text
    strategy_id = retried.json()["strategy_id"]
    assert strategy_id != dead.id
    assert is_problem(await trader.get(f"/strategies/{dead.id}"), 404, "strategy_not_found")
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    assert done["progress"]["orders_placed"] == 2
    again = await trader.post("/strategies", json=TWAP, headers={"Idempotency-Key": "died-before-start"})
    assert again.status_code == 200 and again.json()["strategy_id"] == strategy_id, again.text


async def test_an_owner_cannot_post_a_strategy_childs_key(trader: httpx.AsyncClient) -> None:
    started = await trader.post("/strategies", json=TWAP)
    assert started.status_code == 202, started.text
    strategy_id = started.json()["strategy_id"]
    # The key the strategy's second slice will be placed with, posted before it is.
    for slice_key in ("slice-2", "slice-1"):
        posed = await trader.post(
            "/orders",
            json={"token_in": "SOL", "token_out": "USDC", "amount": "0.5"},
            headers={"Idempotency-Key": f"{strategy_id}:{slice_key}"},
        )
        assert is_problem(posed, 422, "invalid_idempotency_key"), posed.text

    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED" and done["progress"]["orders_placed"] == 2
    children = [(await trader.get(f"/orders/{order_id}")).json() for order_id in done["orders"]]
    assert [(c["parent_id"], c["amount"]) for c in children] == [(strategy_id, "0.01")] * 2
    assert {o["order_id"] for o in await orders_of_owner(trader)} == set(done["orders"])
