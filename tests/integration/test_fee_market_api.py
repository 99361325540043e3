"""The fee market over HTTP: recent fees, an operator's congestion, the landing fields of
an order and the fill report every confirmed order carries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.http import is_problem
from tests.integration.test_orders_api import ORDER, place, wait_terminal

pytestmark = pytest.mark.usefixtures("worker")


async def test_recent_fees_follow_the_congestion_an_operator_sets(
    client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    refused = await client.post("/sim/congestion", json={"level": 0.9, "duration_s": 5})
    assert is_problem(refused, 403, "operator_required"), refused.text
    calm = await operator.post("/sim/congestion", json={"level": 0.1, "duration_s": 3600})
    assert calm.status_code == 200, calm.text
    low = (await client.get("/fees")).json()
    busy = await operator.post("/sim/congestion", json={"level": 0.95, "duration_s": 3600})
    assert busy.json()["level"] == 0.95 and busy.json()["until_slot"] > busy.json()["from_slot"]
    high = (await client.get("/fees")).json()
    await operator.post("/sim/congestion", json={"level": 0.2, "duration_s": 1})  # let it be again

    assert set(low) == {"slot", "congestion", "micro_lamports_per_cu"}
    assert (low["congestion"], high["congestion"]) == (0.1, 0.95)
    for fees in (low, high):
        levels = fees["micro_lamports_per_cu"]
        assert levels["low"] <= levels["medium"] <= levels["high"] <= levels["very_high"]
    assert high["micro_lamports_per_cu"]["medium"] > 10 * low["micro_lamports_per_cu"]["medium"]
    bad = await operator.post("/sim/congestion", json={"level": 1.5})
    assert is_problem(bad, 422, "validation_error"), bad.text


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"priority_fee": "turbo"}, "invalid_priority_fee"),
        ({"priority_fee": {"level": "high", "max_lamports": 100}}, "max_lamports_too_low"),
        ({"priority_fee": {"micro_lamports_per_cu": 10**15}}, "invalid_priority_fee"),
        ({"tip_lamports": 10}, "invalid_tip"),
        ({"tip_lamports": 10**10}, "invalid_tip"),
    ],
)
async def test_bad_landing_fields_are_422_and_store_nothing(
    client: httpx.AsyncClient, fields: dict[str, Any], code: str
) -> None:
    before = (await client.get("/orders", params={"limit": 1})).json()["items"]
    refused = await place(client, {**ORDER, **fields})
    assert is_problem(refused, 422, code), refused.text
    assert refused.json()["errors"][0]["field"] == next(iter(fields))
    assert (await client.get("/orders", params={"limit": 1})).json()["items"] == before


async def test_a_confirmed_order_reports_its_fill_and_fees_to_the_lamport(client: httpx.AsyncClient) -> None:
    placed = await place(
        client,
        {**ORDER, "priority_fee": {"level": "high", "max_lamports": 100_000}, "tip_lamports": 20_000},
    )
    assert placed.status_code == 202, placed.text
    order = await wait_terminal(client, placed.json()["order_id"])
    events = (await client.get(f"/orders/{order['order_id']}/events")).json()["items"]
    confirmed = next(e for e in events if e.get("status") == "CONFIRMED")

    assert order["status"] == "CONFIRMED"
    assert order["priority_fee"] == {"level": "high", "max_lamports": 100_000}
    assert (order["tip_lamports"], order["simulate"]) == (20_000, True)
    fees = order["fees"]
    expected_priority = -(-order["compute_unit_limit"] * order["micro_lamports_per_cu"] // 10**6)
    assert fees["network_lamports"] == 5_000 and fees["tip_lamports"] == 20_000
    assert fees["priority_lamports"] == expected_priority <= 100_000
    assert Decimal(fees["total_sol"]) == Decimal(5_000 + expected_priority + 20_000).scaleb(-9)
    assert 0 < order["compute_units_consumed"] <= order["compute_unit_limit"]
    assert order["landed_slot"] >= order["sent_slot"] and order["sandwiched"] is False
    assert sum(Decimal(f["amount_out"]) for f in order["fills"]) == Decimal(order["amount_out"])
    assert all(f["pool"].startswith(f["dex"] + ":") and f["token_in"] == "SOL" for f in order["fills"])
    expected = Decimal(order["expected_amount_out"])
    slippage = (expected - Decimal(order["amount_out"])) * 10_000 / expected
    assert order["realized_slippage_bps"] == int(slippage.to_integral_value())
    # The CONFIRMED event carries the same report.
    for name in ("fees", "fills", "compute_unit_limit", "landed_slot", "realized_slippage_bps", "sandwiched"):
        assert confirmed["data"][name] == order[name]
