"""Prometheus metrics move when orders run."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.test_orders_api import ORDER, place, wait_terminal

pytestmark = pytest.mark.usefixtures("worker")


def value(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    )
    for line in metrics.splitlines():
        match = re.match(pattern, line)
        if match:
            return float(match.groups()[-1])
    return 0.0


async def test_metrics_move_when_orders_run(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    order_id = (await place(client, {**ORDER, "amount": "0.25", "priority_fee": {"level": "low"}})).json()[
        "order_id"
    ]
    done = await wait_terminal(client, order_id)
    selected, fees = done["selected_dex"], done["fees"]
    after = (await client.get("/metrics")).text

    assert (
        value(after, "order_engine_orders_created_total", type="market")
        == value(before, "order_engine_orders_created_total", type="market") + 1
    )
    assert (
        value(after, "order_engine_orders", status="CONFIRMED", type="market")
        == value(before, "order_engine_orders", status="CONFIRMED", type="market") + 1
    )
    assert (
        value(after, "order_engine_routes_total", dex=selected)
        == value(before, "order_engine_routes_total", dex=selected) + 1
    )
    assert (
        value(after, "order_engine_order_latency_seconds_count")
        == value(before, "order_engine_order_latency_seconds_count") + 1
    )
    assert "order_engine_orders_in_flight" in after and "order_engine_websocket_connections" in after

    # What landing cost, and how long it took at the level the order asked for.
    for kind in ("network", "priority"):
        assert (
            value(after, "order_engine_fees_paid_lamports_total", kind=kind)
            == value(before, "order_engine_fees_paid_lamports_total", kind=kind) + fees[f"{kind}_lamports"]
        )
    assert (
        value(after, "order_engine_landing_slots_count", fee_level="low")
        == value(before, "order_engine_landing_slots_count", fee_level="low") + 1
    )
    assert "order_engine_sandwiched_orders_total" in after
