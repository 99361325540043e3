"""TWAP, DCA and bracket strategies on the real engine: their orders are child orders
(`parent_id`), progress adds up, pause/resume/cancel work, a bracket executes exactly
one leg, and bad input is refused with nothing stored."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col
from temporalio.client import Client, ScheduleDescription
from temporalio.service import RPCError

from accounts.keys import key_id
from contracts.strategies import dca_schedule_id
from core.domain import OrderStatus, ReservationState
from devstack import InfraUrls
from devstack.engine import ROOT
from storage.database import create_engine, create_sessionmaker
from storage.models import Order, Reservation, utcnow
from strategies.schemas import CHILD_ORDERS_SHOWN
from tests.http import is_problem
from tests.keys import KEY_SECRET_ENV, auth, create_test_key
from tests.rows import insert_order
from tests.streams import read_stream

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def trader(api_url: str, infra: InfraUrls) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_test_key(infra.database_url, "strategist")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        yield client


async def start(client: httpx.AsyncClient, **fields: Any) -> str:
    created = await client.post("/strategies", json={"token_in": "SOL", "token_out": "USDC", **fields})
    assert created.status_code == 202, created.text
    strategy_id: str = created.json()["strategy_id"]
    return strategy_id


async def wait_status(
    client: httpx.AsyncClient, strategy_id: str, *statuses: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        strategy: dict[str, Any] = (await client.get(f"/strategies/{strategy_id}")).json()
        if strategy["status"] in statuses:
            return strategy
        assert asyncio.get_running_loop().time() < deadline, f"{strategy_id} stayed {strategy['status']}"
        await asyncio.sleep(0.1)


async def schedule_of(temporal: Client, strategy_id: str) -> ScheduleDescription:
    """The DCA's Schedule, once its workflow has created it (a moment after the 202)."""
    for _ in range(100):
        try:
            return await temporal.get_schedule_handle(dca_schedule_id(strategy_id)).describe()
        except RPCError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{strategy_id} has no schedule")


async def orders_of(client: httpx.AsyncClient, strategy: dict[str, Any]) -> list[dict[str, Any]]:
    return [(await client.get(f"/orders/{order_id}")).json() for order_id in strategy["orders"]]


async def test_a_twap_places_its_slices_as_child_orders_and_adds_them_up(trader: httpx.AsyncClient) -> None:
    strategy_id = await start(trader, type="twap", amount="0.3", slices=3, interval_s=1)
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", done
    orders = await orders_of(trader, done)
    assert len(orders) == 3 and all(o["parent_id"] == strategy_id for o in orders)
    assert sorted(Decimal(o["amount_in"]) for o in orders) == [Decimal("0.1")] * 3
    # The orders end before the strategy records its end; every one confirmed.
    assert all(o["status"] == "CONFIRMED" for o in orders)
    progress = done["progress"]
    assert progress["orders_placed"] == 3 and progress["orders_confirmed"] == 3
    assert Decimal(progress["amount_in_filled"]) == Decimal("0.3")
    out = sum(Decimal(o["amount_out"]) for o in orders)
    assert Decimal(progress["amount_out"]) == out
    assert Decimal(progress["average_price"]) == pytest.approx(out / Decimal("0.3"), rel=Decimal("1e-9"))
    events = (await trader.get(f"/strategies/{strategy_id}/events")).json()["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "created" and events[-1]["status"] == "COMPLETED"
    assert sum(e["event"] == "order_placed" for e in events) == 3


async def test_a_twap_skips_slices_priced_worse_than_its_limit(trader: httpx.AsyncClient) -> None:
    strategy_id = await start(
        trader, type="twap", amount="0.2", slices=2, interval_s=1, limit_price="1000000"
    )
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    assert done["orders"] == [] and done["progress"]["orders_skipped"] == 2
    events = (await trader.get(f"/strategies/{strategy_id}/events")).json()["items"]
    skipped = [e for e in events if e["event"] == "slice_skipped"]
    # The amount carries: the second slice would have sold both.
    assert [s["data"]["amount"] for s in skipped] == ["0.1", "0.2"]
    assert "worse than the limit" in skipped[0]["data"]["reason"]


async def test_a_cancelled_twap_places_nothing_more(trader: httpx.AsyncClient) -> None:
    strategy_id = await start(trader, type="twap", amount="1", slices=10, interval_s=30)
    first = await wait_status(trader, strategy_id, "RUNNING")
    for _ in range(100):
        first = (await trader.get(f"/strategies/{strategy_id}")).json()
        if first["orders"]:
            break
        await asyncio.sleep(0.1)
    assert len(first["orders"]) == 1
    cancelled = await trader.post(f"/strategies/{strategy_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    done = await wait_status(trader, strategy_id, "CANCELLED")
    assert len(done["orders"]) == 1
    again = await trader.post(f"/strategies/{strategy_id}/cancel")
    assert is_problem(again, 409, "strategy_finished")


async def test_a_paused_twap_waits_and_a_resumed_one_finishes(trader: httpx.AsyncClient) -> None:
    strategy_id = await start(trader, type="twap", amount="0.2", slices=2, interval_s=2)
    paused = await trader.post(f"/strategies/{strategy_id}/pause")
    assert paused.status_code == 202, paused.text
    assert (await wait_status(trader, strategy_id, "PAUSED"))["status"] == "PAUSED"
    assert is_problem(await trader.post(f"/strategies/{strategy_id}/pause"), 409, "strategy_state_conflict")
    await asyncio.sleep(3)  # longer than its interval: a paused strategy places nothing
    held = (await trader.get(f"/strategies/{strategy_id}")).json()
    assert held["status"] == "PAUSED" and len(held["orders"]) <= 1
    assert (await trader.post(f"/strategies/{strategy_id}/resume")).status_code == 202
    done = await wait_status(trader, strategy_id, "COMPLETED")
    assert len(done["orders"]) == 2


async def test_a_dca_runs_on_a_temporal_schedule_until_its_count(
    trader: httpx.AsyncClient, settings: Any
) -> None:
    strategy_id = await start(trader, type="dca", amount_per_order="0.05", every="1s", orders=2)
    temporal = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    described = await schedule_of(temporal, strategy_id)
    assert described.schedule.policy.overlap.name == "SKIP"
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED" and done["schedule_id"] == dca_schedule_id(strategy_id)
    assert done["progress"]["orders_placed"] == 2 and done["progress"]["orders_confirmed"] == 2
    assert done["orders_limit"] == 2 and len(done["orders"]) == 2
    with pytest.raises(RPCError):  # its Schedule is gone with it
        await temporal.get_schedule_handle(dca_schedule_id(strategy_id)).describe()


async def test_a_paused_dca_pauses_its_schedule(trader: httpx.AsyncClient, settings: Any) -> None:
    strategy_id = await start(trader, type="dca", amount_per_order="0.05", every="1h")
    assert (await trader.post(f"/strategies/{strategy_id}/pause")).status_code == 202
    await wait_status(trader, strategy_id, "PAUSED")
    temporal = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    await schedule_of(temporal, strategy_id)
    schedule = temporal.get_schedule_handle(dca_schedule_id(strategy_id))
    assert (await schedule.describe()).schedule.state.paused
    assert (await trader.post(f"/strategies/{strategy_id}/resume")).status_code == 202
    await wait_status(trader, strategy_id, "RUNNING")
    assert not (await schedule.describe()).schedule.state.paused
    assert (await trader.post(f"/strategies/{strategy_id}/cancel")).status_code == 202
    await wait_status(trader, strategy_id, "CANCELLED")


async def test_a_bracket_executes_exactly_one_leg_when_a_move_crosses_both(
    trader: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    # A token of its own, on one constant-product pool: no other route prices its legs, and
    # the pool can move as far as the test asks whatever earlier tests did to SOL's pools.
    listed = await operator.post(
        "/sim/pools",
        json={
            "token": "BRACKET",
            "dex": "raydium",
            "quote_token": "SOL",
            "liquidity": "1000",
            "price": "0.01",
            "activation_in_s": 0,
        },
    )
    assert listed.status_code == 201, listed.text
    owner = (await trader.get("/wallet")).json()["owner"]
    funded = await operator.post("/sim/wallet", json={"owner": owner, "token": "BRACKET", "amount": "100"})
    assert funded.status_code == 200, funded.text
    quoted = await trader.post("/quotes", json={"token_in": "BRACKET", "token_out": "SOL", "amount": "1"})
    assert quoted.status_code == 200, quoted.text
    quote = quoted.json()
    price = Decimal(quote["price"])
    strategy_id = await start(
        trader,
        token_in="BRACKET",
        token_out="SOL",
        type="bracket",
        amount="1",
        take_profit_price=format((price * Decimal("1.03")).quantize(Decimal("1e-9")), "f"),
        stop_loss_price=format((price * Decimal("0.97")).quantize(Decimal("1e-9")), "f"),
        slippage_bps=1000,
    )
    placed: dict[str, Any] = {}
    for _ in range(200):
        placed = (await trader.get(f"/strategies/{strategy_id}")).json()
        legs = await orders_of(trader, placed)
        if len(legs) == 2 and all(o["status"] == "WAITING" for o in legs):
            break
        await asyncio.sleep(0.1)
    # Up past the take-profit and straight down past the stop, before either can execute.
    for bps in (600, -1100):
        moved = await operator.post("/sim/price", json={"pair": "BRACKET/SOL", "move_bps": bps})
        assert moved.status_code == 200, moved.text
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    legs = await orders_of(trader, done)
    assert sorted(o["status"] for o in legs) == ["CANCELLED", "CONFIRMED"], legs
    assert all(o["parent_id"] == strategy_id for o in legs)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "twap", "amount": "1", "slices": 1, "interval_s": 1}, "invalid_slices"),
        ({"type": "twap", "amount": "1", "slices": "3", "interval_s": 1}, "invalid_slices"),
        ({"type": "grid", "amount": "1"}, "invalid_type"),
        ({"type": "twap", "amount": "1", "slices": 501, "interval_s": 1}, "invalid_slices"),
        ({"type": "twap", "amount": "1", "slices": 2, "interval_s": 0}, "invalid_interval"),
        ({"type": "twap", "amount": "0.000000001", "slices": 2, "interval_s": 1}, "amount_too_small"),
        ({"type": "dca", "amount_per_order": "1", "every": "soon"}, "invalid_every"),
        ({"type": "dca", "amount_per_order": "1", "every": "1m", "orders": 0}, "invalid_orders"),
        (
            {"type": "bracket", "amount": "1", "take_profit_price": "100", "stop_loss_price": "200"},
            "invalid_bracket",
        ),
        (
            {"type": "bracket", "amount": "1", "take_profit_price": "1", "stop_loss_price": "0.5"},
            "trigger_would_fire",
        ),
        ({"type": "twap", "amount": "1", "slices": 2, "interval_s": 1, "every": "1m"}, "unexpected_field"),
        ({"type": "dca", "amount_per_order": "-1", "every": "1m"}, "invalid_amount_per_order"),
        ({"type": "twap", "amount": "lots", "slices": 2, "interval_s": 1}, "invalid_amount"),
        ({"type": "twap", "token_out": "NOPE", "amount": "1", "slices": 2, "interval_s": 1}, "unknown_token"),
    ],
)
async def test_bad_strategies_are_refused_and_nothing_is_stored(
    trader: httpx.AsyncClient, fields: dict[str, Any], code: str
) -> None:
    before = (await trader.get("/strategies")).json()["items"]
    refused = await trader.post("/strategies", json={"token_in": "SOL", "token_out": "USDC", **fields})
    assert is_problem(refused, 422, code), refused.text
    assert (await trader.get("/strategies")).json()["items"] == before


async def test_other_owners_cannot_see_a_strategy(
    trader: httpx.AsyncClient, api_url: str, infra: InfraUrls
) -> None:
    strategy_id = await start(trader, type="dca", amount_per_order="0.05", every="1h")
    key = await create_test_key(infra.database_url, "someone-else")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as other:
        assert is_problem(await other.get(f"/strategies/{strategy_id}"), 404, "strategy_not_found")
        assert is_problem(await other.post(f"/strategies/{strategy_id}/cancel"), 404, "strategy_not_found")
    assert (await trader.post(f"/strategies/{strategy_id}/cancel")).status_code == 202


async def test_the_strategy_websocket_sends_a_snapshot_then_every_event(
    trader: httpx.AsyncClient, api_url: str
) -> None:
    strategy_id = await start(trader, type="twap", amount="0.2", slices=2, interval_s=1)
    token = trader.headers["Authorization"].removeprefix("Bearer ")
    stream = await read_stream(
        api_url, f"strategyId={strategy_id}&after_seq=0", key=token, path="/ws/strategies"
    )
    snapshot, *frames = stream.frames
    assert snapshot["type"] == "SNAPSHOT" and snapshot["strategy_id"] == strategy_id
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert all(f["type"] == "EVENT" for f in frames) and frames[-1]["status"] == "COMPLETED"
    assert stream.close_code == 1000


async def test_an_owner_cannot_run_more_strategies_than_the_cap_even_at_once(
    api_url: str, infra: InfraUrls, settings: Any
) -> None:
    key = await create_test_key(infra.database_url, "greedy")
    cap = settings.max_running_strategies_per_owner
    body = {"type": "dca", "token_in": "SOL", "token_out": "USDC", "amount_per_order": "0.01", "every": "1h"}
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        answers = await asyncio.gather(*(client.post("/strategies", json=body) for _ in range(cap + 5)))
        accepted = [a.json()["strategy_id"] for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code != 202]
        assert len(accepted) == cap
        assert all(is_problem(a, 429, "too_many_strategies") for a in refused)
        for strategy_id in accepted:
            assert (await client.post(f"/strategies/{strategy_id}/cancel")).status_code == 202


async def test_a_slice_that_cannot_be_funded_is_a_failed_child_and_the_strategy_goes_on(
    trader: httpx.AsyncClient,
) -> None:
    # The wallet holds no JUP: every slice is refused at placement.
    strategy_id = await start(trader, type="twap", token_in="JUP", amount="2", slices=2, interval_s=1)
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED" and done["orders"] == []
    assert done["progress"]["orders_failed"] == 2 and done["progress"]["orders_placed"] == 0
    events = (await trader.get(f"/strategies/{strategy_id}/events")).json()["items"]
    refused = [e for e in events if e["event"] == "order_refused"]
    assert len(refused) == 2 and all(e["data"]["reason"].startswith("insufficient_funds") for e in refused)


async def test_an_hourly_dca_places_its_first_order_at_once_not_at_the_next_aligned_hour(
    trader: httpx.AsyncClient,
) -> None:
    strategy_id = await start(trader, type="dca", amount_per_order="0.05", every="1h", orders=3)
    for _ in range(300):
        strategy = (await trader.get(f"/strategies/{strategy_id}")).json()
        if strategy["orders"]:
            break
        await asyncio.sleep(0.1)
    assert len(strategy["orders"]) == 1, strategy
    assert (await trader.post(f"/strategies/{strategy_id}/cancel")).status_code == 202
    done = await wait_status(trader, strategy_id, "CANCELLED")
    assert len(done["orders"]) == 1  # cancelled: no second round


async def temporal_of(settings: Any) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)


async def first_orders(client: httpx.AsyncClient, strategy_id: str, count: int = 1) -> dict[str, Any]:
    for _ in range(300):
        strategy: dict[str, Any] = (await client.get(f"/strategies/{strategy_id}")).json()
        if len(strategy["orders"]) >= count:
            return strategy
        await asyncio.sleep(0.1)
    raise AssertionError(f"{strategy_id} placed fewer than {count} orders")


async def first_round_done(client: httpx.AsyncClient, strategy_id: str) -> None:
    """A DCA's first round placed its order, or could not (the owner's open orders at
    their cap, say)."""
    for _ in range(300):
        events = (await client.get(f"/strategies/{strategy_id}/events")).json()["items"]
        if any(e["event"] in ("order_ended", "order_refused") for e in events):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{strategy_id}'s first round did not finish")


async def schedule_gone(temporal: Client, strategy_id: str) -> bool:
    try:
        await temporal.get_schedule_handle(dca_schedule_id(strategy_id)).describe()
    except RPCError:
        return True
    return False


async def test_a_dca_whose_workflow_was_terminated_places_nothing_more_and_ends(
    trader: httpx.AsyncClient, settings: Any
) -> None:
    strategy_id = await start(trader, type="dca", amount_per_order="0.01", every="1s")
    temporal = await temporal_of(settings)
    before = len((await first_orders(trader, strategy_id))["orders"])
    await temporal.get_workflow_handle(strategy_id).terminate(reason="operator terminated it")
    # The next round finds the strategy's workflow gone: it places nothing, deletes the
    # Schedule and ends the strategy with the reason (the reconciler would, too).
    done = await wait_status(trader, strategy_id, "FAILED", "CANCELLED", timeout_s=30)
    assert done["status"] == "FAILED"
    assert await schedule_gone(temporal, strategy_id)
    assert len(done["orders"]) <= before + 1  # at most a round that was placing already
    events = (await trader.get(f"/strategies/{strategy_id}/events")).json()["items"]
    assert events[-1]["event"] == "ended" and events[-1]["data"]["reason"] == "workflow terminated"


async def test_cancelling_a_strategy_whose_workflow_is_gone_ends_it_and_frees_the_slot(
    api_url: str, infra: InfraUrls, settings: Any
) -> None:
    key = await create_test_key(infra.database_url, "orphaned")
    cap = settings.max_running_strategies_per_owner
    body = {"type": "dca", "token_in": "SOL", "token_out": "USDC", "amount_per_order": "0.01", "every": "1h"}
    temporal = await temporal_of(settings)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        started = [await start(client, **body) for _ in range(cap)]
        assert is_problem(await client.post("/strategies", json=body), 429, "too_many_strategies")
        gone = started[0]
        await first_round_done(client, gone)  # the next is an hour away
        await temporal.get_workflow_handle(gone).terminate(reason="operator terminated it")
        cancelled = await client.post(f"/strategies/{gone}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        strategy = (await client.get(f"/strategies/{gone}")).json()
        assert strategy["status"] == "CANCELLED"
        assert await schedule_gone(temporal, gone)
        # Its slot is free again.
        started[0] = await start(client, **body)
        # Pause or resume cannot reach a workflow that is gone either: it ends FAILED (or
        # its first round ended it so, if that came after the terminate).
        await temporal.get_workflow_handle(started[1]).terminate(reason="operator terminated it")
        assert is_problem(await client.post(f"/strategies/{started[1]}/pause"), 409, "strategy_finished")
        assert (await client.get(f"/strategies/{started[1]}")).json()["status"] == "FAILED"
        assert await schedule_gone(temporal, started[1])
        started.pop(1)
        for strategy_id in started:
            assert (await client.post(f"/strategies/{strategy_id}/cancel")).status_code == 202


async def test_the_reconciler_ends_a_strategy_whose_workflow_is_gone(
    trader: httpx.AsyncClient, settings: Any
) -> None:
    strategy_id = await start(trader, type="twap", amount="0.2", slices=2, interval_s=3600)
    await first_orders(trader, strategy_id)
    await (await temporal_of(settings)).get_workflow_handle(strategy_id).terminate(reason="stuck")
    # Nothing else would notice: no round, no request. The API's reconciler passes every 10 s.
    done = await wait_status(trader, strategy_id, "FAILED", "CANCELLED", "COMPLETED", timeout_s=40)
    assert done["status"] == "FAILED" and len(done["orders"]) == 1
    events = (await trader.get(f"/strategies/{strategy_id}/events")).json()["items"]
    assert events[-1]["data"]["reason"] == "workflow terminated"


async def test_a_strategy_with_more_orders_than_a_page_shows_the_newest_and_counts_them_all(
    trader: httpx.AsyncClient, api_url: str, settings: Any
) -> None:
    # Every slice skipped: the strategy ends with no orders of its own.
    strategy_id = await start(
        trader, type="twap", amount="0.2", slices=2, interval_s=1, limit_price="1000000"
    )
    await wait_status(trader, strategy_id, "COMPLETED")
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        sessions = create_sessionmaker(engine)
        children = [
            await insert_order(
                sessions,
                owner="strategist",
                amount="0.001",
                amount_out=Decimal("0.1"),
                parent_id=strategy_id,
                accepted_at=utcnow(),  # the reconciler leaves them alone
            )
            for _ in range(CHILD_ORDERS_SHOWN + 50)
        ]
        async with sessions() as session, session.begin():
            await session.execute(
                update(Order).where(col(Order.parent_id) == strategy_id).values(status=OrderStatus.CONFIRMED)
            )
    finally:
        await engine.dispose()
    ids = sorted(o.id for o in children)
    strategy = (await trader.get(f"/strategies/{strategy_id}")).json()
    assert strategy["orders"] == ids[-CHILD_ORDERS_SHOWN:]  # the newest, oldest first
    assert strategy["order_counts"] == {"total": len(ids), "by_status": {"CONFIRMED": len(ids)}}
    progress = strategy["progress"]  # still summed over every order
    assert progress["orders_placed"] == len(ids) and Decimal(progress["amount_in_filled"]) == Decimal("0.15")
    # Every order, a page at a time, newest first, each once.
    listed: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 40, **({"cursor": cursor} if cursor else {})}
        page = (await trader.get(f"/strategies/{strategy_id}/orders", params=params)).json()
        listed += [o["order_id"] for o in page["items"]]
        assert all(o["parent_id"] == strategy_id for o in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert listed == ids[::-1]
    bad = await trader.get(f"/strategies/{strategy_id}/orders", params={"cursor": "nope"})
    assert is_problem(bad, 422, "invalid_cursor")
    token = trader.headers["Authorization"].removeprefix("Bearer ")
    stream = await read_stream(api_url, f"strategyId={strategy_id}", key=token, path="/ws/strategies")
    snapshot = stream.frames[0]["strategy"]
    assert snapshot["orders"] == ids[-CHILD_ORDERS_SHOWN:] and snapshot["order_counts"]["total"] == len(ids)


async def test_revoking_a_key_with_cancel_open_cancels_its_owners_strategies_and_waiting_orders(
    api_url: str, infra: InfraUrls, operator: httpx.AsyncClient, tmp_path: Path
) -> None:
    key = await create_test_key(infra.database_url, "departing")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        dca = await start(client, type="dca", amount_per_order="0.01", every="1h")
        twap = await start(client, type="twap", amount="0.2", slices=2, interval_s=3600)
        await first_orders(client, twap)
        waiting = await client.post(
            "/orders",
            json={
                "type": "limit",
                "token_in": "SOL",
                "token_out": "USDC",
                "amount": "0.01",
                "limit_price": "1000000",
            },
        )
        assert waiting.status_code == 202, waiting.text
        order_id = waiting.json()["order_id"]
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "keys",
        "revoke",
        key_id(key),
        "--cancel-open",
        cwd=ROOT,
        env={**os.environ, **infra.as_env(), **KEY_SECRET_ENV, "ORDER_ENGINE_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    assert "departing: 2 strategies cancelled" in out.decode(), out.decode()
    for strategy_id in (dca, twap):
        assert (await wait_status(operator, strategy_id, "CANCELLED", "FAILED"))["status"] == "CANCELLED"
    order = (await operator.get(f"/orders/{order_id}")).json()
    for _ in range(100):
        if order["status"] != "WAITING":
            break
        await asyncio.sleep(0.1)
        order = (await operator.get(f"/orders/{order_id}")).json()
    assert order["status"] == "CANCELLED"


async def test_a_bracket_whose_workflow_is_gone_cancels_its_waiting_legs_when_it_ends(
    trader: httpx.AsyncClient, settings: Any
) -> None:
    quote = (
        await trader.post("/quotes", json={"token_in": "SOL", "token_out": "USDC", "amount": "1"})
    ).json()
    price = Decimal(quote["price"])
    strategy_id = await start(
        trader,
        type="bracket",
        amount="0.5",
        take_profit_price=str((price * Decimal("1.5")).quantize(Decimal("0.01"))),
        stop_loss_price=str((price * Decimal("0.5")).quantize(Decimal("0.01"))),
    )
    placed = await first_orders(trader, strategy_id, count=2)
    for _ in range(100):  # both legs started
        if all(o["status"] == "WAITING" for o in await orders_of(trader, placed)):
            break
        await asyncio.sleep(0.1)
    await (await temporal_of(settings)).get_workflow_handle(strategy_id).terminate(reason="by hand")
    # Nobody is left to fire either leg: they would hold their reservations for a week.
    assert (await trader.post(f"/strategies/{strategy_id}/cancel")).status_code == 202
    for _ in range(100):
        legs = await orders_of(trader, placed)
        if all(o["status"] == "CANCELLED" for o in legs):
            break
        await asyncio.sleep(0.1)
    assert [o["status"] for o in legs] == ["CANCELLED", "CANCELLED"], legs


async def test_an_order_a_gone_strategy_placed_but_never_started_is_withdrawn(
    trader: httpx.AsyncClient, settings: Any
) -> None:
    strategy_id = await start(trader, type="twap", amount="0.2", slices=2, interval_s=3600)
    await first_orders(trader, strategy_id)
    await (await temporal_of(settings)).get_workflow_handle(strategy_id).terminate(reason="by hand")
    # As the workflow leaves an order it had placed but not started when it was ended.
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        sessions = create_sessionmaker(engine)
        unstarted = await insert_order(
            sessions, owner="strategist", amount="0.1", parent_id=strategy_id, accepted_at=utcnow()
        )
        assert (await trader.post(f"/strategies/{strategy_id}/cancel")).status_code == 202
        order = (await trader.get(f"/orders/{unstarted.id}")).json()
        assert order["status"] == "CANCELLED"
        async with sessions() as session:
            reservation = await session.get(Reservation, unstarted.id)
        assert reservation is not None and reservation.state is ReservationState.RELEASED
    finally:
        await engine.dispose()
