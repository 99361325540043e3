"""Record the workflow histories that tests/unit/test_replay.py replays.

    .venv/bin/python -m tests.histories.record

Run it after an *intended* change to workflow code (guarded by `workflow.patched()`),
commit the new files beside the old ones, and keep the old ones: they are what running
workflows of the previous version look like, and the replay test must still accept them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from core.temporal import connect_temporal
from devstack import EmbeddedStack
from migrations import run_migrations
from tests.conftest import make_settings, running_api, running_worker
from tests.keys import OPERATOR, auth, install_test_keys

HERE = Path(__file__).parent
TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"}


async def finish(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    order_id: str = (await client.post("/orders", json=body)).json()["order_id"]
    while (await client.get(f"/orders/{order_id}")).json()["status"] not in TERMINAL:
        await asyncio.sleep(0.1)
    return order_id


async def wait_for(client: httpx.AsyncClient, order_id: str, status: str | None = None) -> None:
    """Until the order is in `status` (or terminal, when None)."""
    while True:
        current = (await client.get(f"/orders/{order_id}")).json()["status"]
        if current == status or (status is None and current in TERMINAL):
            return
        await asyncio.sleep(0.05)


async def save(temporal: Client, order_id: str, name: str) -> None:
    history = await temporal.get_workflow_handle(order_id).fetch_history()
    (HERE / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name} ({order_id})")


@contextlib.asynccontextmanager
async def engine(
    stack: EmbeddedStack, data_dir: Path, **overrides: object
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(stack.urls, data_dir, **overrides)
    async with (
        running_worker(settings),
        running_api(settings) as url,
        httpx.AsyncClient(base_url=url, headers=auth(OPERATOR)) as client,
    ):
        yield client


async def record(stack: EmbeddedStack, data_dir: Path) -> None:
    temporal = await connect_temporal(stack.urls.temporal_address, "default")
    sol_usdc = {"token_in": "SOL", "token_out": "USDC", "slippage_bps": 100}
    async with engine(stack, data_dir) as client:
        await save(
            temporal, await finish(client, {**sol_usdc, "amount": "1"}), "market_confirmed_single_venue"
        )
        await save(temporal, await finish(client, {**sol_usdc, "amount": "1000"}), "market_confirmed_split")
        await save(
            temporal,
            await finish(client, {**sol_usdc, "amount": "20000"}),
            "market_failed_insufficient_funds",
        )
        limit = {"type": "limit", "token_in": "USDC", "token_out": "JUP", "amount": "100"}
        far = await client.post("/orders", json={**limit, "limit_price": "1000", "expires_in_s": 1})
        await wait_for(client, far.json()["order_id"])
        await save(temporal, far.json()["order_id"], "limit_expired")
        waiting = (await client.post("/orders", json={**limit, "limit_price": "1000"})).json()["order_id"]
        await wait_for(client, waiting, "WAITING")
        await client.post(f"/orders/{waiting}/cancel")
        await wait_for(client, waiting)
        await save(temporal, waiting, "limit_cancelled_while_waiting")
        near = (await client.post("/orders", json={**limit, "limit_price": "1.13"})).json()["order_id"]
        await wait_for(client, near, "WAITING")
        await client.post("/sim/price", json={"pair": "JUP/USDC", "move_bps": -500})
        await wait_for(client, near)
        await save(temporal, near, "limit_filled_after_price_move")
        sniper = {
            "type": "sniper",
            "token_in": "SOL",
            "token_out": "RECORDED",
            "amount": "1",
            "slippage_bps": 300,
        }
        sniped = (await client.post("/orders", json=sniper)).json()["order_id"]
        await wait_for(client, sniped, "WAITING")
        await client.post(
            "/sim/pools",
            json={"token": "RECORDED", "quote_token": "SOL", "liquidity": "500", "activation_in_s": 0},
        )
        await wait_for(client, sniped)
        await save(temporal, sniped, "sniper_filled_when_pool_opened")
    async with engine(stack, data_dir, ORDER_ENGINE_SIM_FAILURE_RATE=1) as client:
        await save(
            temporal, await finish(client, {**sol_usdc, "amount": "1"}), "market_failed_retries_exhausted"
        )
    async with engine(stack, data_dir, ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS=3000) as client:
        # A trade between quote and landing: slippage, then attempt 2 with a fresh quote.
        order_id = (
            await client.post("/orders", json={**sol_usdc, "amount": "20", "slippage_bps": 30})
        ).json()["order_id"]
        while (await client.get(f"/orders/{order_id}")).json()["status"] != "BUILDING":
            await asyncio.sleep(0.02)
        await client.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": -400})
        while (order := (await client.get(f"/orders/{order_id}")).json())["status"] not in TERMINAL:
            await asyncio.sleep(0.1)
        assert order["attempts"] == 2, order
        await save(temporal, order_id, "market_confirmed_after_slippage_retry")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(Path(tmp) / "infra", ui=False, persistent=False)
        try:
            database_url = stack.start().database_url
            run_migrations(database_url)
            install_test_keys(database_url)
            asyncio.run(record(stack, Path(tmp)))
        finally:
            stack.stop()
    os._exit(0)  # a process that ran a Temporal worker may abort at exit (sdk-python#300)


if __name__ == "__main__":
    main()
