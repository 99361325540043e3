"""TWAP, DCA and bracket strategies on the real engine: their orders are child orders
(`parent_id`), progress adds up, pause/resume/cancel work, a bracket executes exactly
one leg, and bad input is refused with nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client, ScheduleDescription
from temporalio.service import RPCError

from contracts.strategies import dca_schedule_id
from devstack import InfraUrls
from tests.http import is_problem
from tests.keys import auth, create_test_key
from tests.streams import read_stream

pytestmark = pytest.mark.usefixtures("worker")
PAIR = "SOL/USDT"  # the bracket test moves it; others trade SOL/USDC


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
    quote = (
        await trader.post("/quotes", json={"token_in": "SOL", "token_out": "USDT", "amount": "1"})
    ).json()
    price = Decimal(quote["price"])
    strategy_id = await start(
        trader,
        token_out="USDT",
        type="bracket",
        amount="1",
        take_profit_price=str((price * Decimal("1.03")).quantize(Decimal("0.01"))),
        stop_loss_price=str((price * Decimal("0.97")).quantize(Decimal("0.01"))),
        slippage_bps=1000,
    )
    placed: dict[str, Any] = {}
    for _ in range(200):
        placed = (await trader.get(f"/strategies/{strategy_id}")).json()
        legs = await orders_of(trader, placed)
        if len(legs) == 2 and all(o["status"] == "WAITING" for o in legs):
            break
        await asyncio.sleep(0.1)
    # Up past the take-profit and straight down past the stop, before either can execute:
    # SOL against both stablecoins (a leg is priced by the best route it may take, through
    # USDC too).
    for bps in (600, -1100):
        for pair in (PAIR, "SOL/USDC"):
            moved = await operator.post("/sim/price", json={"pair": pair, "move_bps": bps})
            assert moved.status_code == 200, moved.text
    done = await wait_status(trader, strategy_id, "COMPLETED", "FAILED")
    legs = await orders_of(trader, done)
    assert sorted(o["status"] for o in legs) == ["CANCELLED", "CONFIRMED"], legs
    assert all(o["parent_id"] == strategy_id for o in legs)
    for pair in (PAIR, "SOL/USDC"):
        await operator.post("/sim/price", json={"pair": pair, "move_bps": 500})


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
