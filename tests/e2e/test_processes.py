"""The engine as real processes: two `order-engine api` and one `order-engine worker`
on their own embedded infra. An order placed through one API streams from the other."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli import run_migrations
from devstack import EmbeddedStack, InfraUrls
from devstack.ports import choose_port
from tests.streams import read_stream

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def e2e_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraUrls]:
    stack = EmbeddedStack(tmp_path_factory.mktemp("e2e-infra"), ui=False, persistent=False)
    try:
        urls = stack.start()
        run_migrations(urls.database_url)
        yield urls
    finally:
        stack.stop()


def start(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", role], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready:\n{log.read_text()}")


@pytest.fixture(scope="module")
def engine_processes(e2e_infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    logs = tmp_path_factory.mktemp("e2e-logs")
    env = {
        **os.environ,
        **e2e_infra.as_env(),
        "ORDER_ENGINE_DATA_DIR": str(logs),
        "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "20",
        "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "1000",
        "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
        "ORDER_ENGINE_ORDERS_PER_MINUTE": "6000",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start("worker", env, logs / "worker.log"))
        urls = []
        for name in ("api-a", "api-b"):
            port = choose_port()
            api = start("api", {**env, "ORDER_ENGINE_API_PORT": str(port)}, logs / f"{name}.log")
            processes.append(api)
            urls.append(f"http://127.0.0.1:{port}")
            wait_ready(urls[-1], api, logs / f"{name}.log")
        yield urls
    finally:
        for process in reversed(processes):
            stop(process)


async def test_an_order_placed_on_one_api_streams_whole_from_another(engine_processes: list[str]) -> None:
    api_a, api_b = engine_processes
    async with httpx.AsyncClient(base_url=api_a, timeout=30) as client:
        accepted = (
            await client.post("/orders", json={"token_in": "SOL", "token_out": "USDC", "amount": "2"})
        ).json()
    order_id = accepted["order_id"]

    # Subscribed on B while the order runs: every event, in order, then close 1000.
    stream = await asyncio.wait_for(read_stream(api_b, f"orderId={order_id}&after_seq=0"), 60)
    stream.frames[0]["seq"] = 0
    stream.assert_gap_free()
    assert stream.close_code == 1000
    assert stream.events[-1]["status"] == "CONFIRMED"
    assert [e["status"] for e in stream.events][:2] == ["PENDING", "ROUTING"]

    async with httpx.AsyncClient(base_url=api_b, timeout=30) as client:
        order = (await client.get(f"/orders/{order_id}")).json()
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
    assert order["status"] == "CONFIRMED" and [t["tx_hash"] for t in txs] == [order["tx_hash"]]


async def test_live_events_reach_a_subscriber_on_the_other_api(engine_processes: list[str]) -> None:
    api_a, api_b = engine_processes
    async with httpx.AsyncClient(base_url=api_a, timeout=30) as client:
        order_id = (
            await client.post("/orders", json={"token_in": "USDC", "token_out": "SOL", "amount": "300"})
        ).json()["order_id"]
    stream = await asyncio.wait_for(read_stream(api_b, f"orderId={order_id}"), 60)
    # The snapshot is taken before the order finishes (execution takes ~1 s), so
    # the terminal event can only have arrived live, through Redis, from the worker.
    assert stream.snapshot["status"] != "CONFIRMED"
    stream.assert_gap_free()
    assert stream.events[-1]["status"] == "CONFIRMED"
