"""A worker SIGKILLed between send and confirm, on a real chain (our JSON-RPC node, the
engine in real processes): the order confirms with one landed swap, never two, whether
the killed worker's transaction lands late or never."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from solders.signature import Signature
from sqlalchemy import select
from sqlmodel import col

from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, EngineProcesses
from storage.database import create_engine, create_sessionmaker
from storage.models import SentTransaction
from tests.keys import KEY_SECRET_ENV, auth
from tests.solana_node.market_setup import ChainUnderTest, new_trader, start_test_cluster
from tests.streams import TERMINAL
from wallets.custody import KeypairSeal
from wallets.service import Wallets

WALLET_KEY = Fernet.generate_key().decode()


@dataclass
class Deployment:
    engine: EngineProcesses
    cluster: ChainUnderTest
    database_url: str


@pytest.fixture
def deployment(stack: EmbeddedStack, tmp_path: Path) -> Iterator[Deployment]:
    cluster = start_test_cluster(tmp_path, slot_ms=50)
    engine = EngineProcesses(
        stack.urls,
        tmp_path / "engine",
        {
            **QUIET_MARKET,
            **KEY_SECRET_ENV,
            "ORDER_ENGINE_MARKET": "rpc",
            "ORDER_ENGINE_RPC_URL": cluster.node.url,
            "ORDER_ENGINE_VENUES_FILE": str(cluster.venues_file),
            "ORDER_ENGINE_WALLET_KEY": WALLET_KEY,
            "ORDER_ENGINE_RPC_TIMEOUT_S": "2",
        },
    )
    try:
        yield Deployment(engine, cluster, stack.urls.database_url)
    finally:
        engine.stop()
        cluster.node.stop()


@pytest.fixture
async def client(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    api = deployment.engine.start("api")
    owner = f"crash-{uuid.uuid4().hex[:8]}"
    key = deployment.engine.new_key(owner)
    keypair = new_trader(deployment.cluster.node)
    engine = create_engine(deployment.database_url, pool_size=1)
    try:
        await Wallets(create_sessionmaker(engine), {}, seal=KeypairSeal(SecretStr(WALLET_KEY))).hold(
            owner, keypair
        )
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=str(api.url), timeout=30, headers=auth(key)) as client:
        yield client


async def sent(database_url: str, order_id: str) -> list[str]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(col(SentTransaction.signature))
                .where(col(SentTransaction.order_id) == order_id)
                .order_by(col(SentTransaction.created_at))
            )
            return list(rows.scalars())
    finally:
        await engine.dispose()


async def until(predicate: Any, timeout: float = 90) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


def landed(cluster: ChainUnderTest, signatures: list[str]) -> list[str]:
    found = []
    for signature in signatures:
        tx = cluster.node.landed(Signature.from_string(signature))
        if tx is not None and tx.execution.error is None:
            found.append(signature)
    return found


async def place_and_kill_after_sending(
    deployment: Deployment, client: httpx.AsyncClient
) -> tuple[str, list[str]]:
    """An order whose first transaction is sent (and held by the cluster) when its worker
    is SIGKILLed; a new worker takes over."""
    doomed = deployment.engine.start("worker")
    deployment.cluster.node.hold_landing()
    response = await client.post(
        "/orders", json={"token_in": "SOL", "token_out": "PUMP", "amount": "0.05", "slippage_bps": 300}
    )
    assert response.status_code == 202, response.text
    order_id = str(response.json()["order_id"])
    sends_before = deployment.cluster.node.calls.count("sendTransaction")

    async def was_sent() -> bool:
        return bool(await sent(deployment.database_url, order_id)) and (
            deployment.cluster.node.calls.count("sendTransaction") > sends_before
        )

    await until(was_sent)
    doomed.kill()
    first = await sent(deployment.database_url, order_id)
    deployment.engine.start("worker")
    return order_id, first


async def final_status(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    order: dict[str, Any] = {}

    async def terminal() -> bool:
        nonlocal order
        order = (await client.get(f"/orders/{order_id}")).json()
        return order["status"] in TERMINAL

    await until(terminal, timeout=120)
    return order


async def test_a_worker_killed_between_send_and_confirm_lands_the_same_transaction_once(
    deployment: Deployment, client: httpx.AsyncClient
) -> None:
    order_id, first = await place_and_kill_after_sending(deployment, client)
    node = deployment.cluster.node
    sends = node.calls.count("sendTransaction")
    # The new worker may build anew, but it sends the first transaction's bytes again.
    await until(lambda: _true(node.calls.count("sendTransaction") > sends))
    node.release_landing()
    order = await final_status(client, order_id)
    assert order["status"] == "CONFIRMED", order
    signatures = await sent(deployment.database_url, order_id)
    assert landed(deployment.cluster, signatures) == first == [order["tx_hash"]]


async def test_a_killed_workers_transaction_that_never_lands_is_replaced_only_after_it_expired(
    deployment: Deployment, client: httpx.AsyncClient
) -> None:
    node = deployment.cluster.node
    order_id, first = await place_and_kill_after_sending(deployment, client)
    expires_at = await _last_valid(deployment.database_url, first[0])

    async def replaced() -> bool:
        return len(await sent(deployment.database_url, order_id)) > 1

    await until(replaced)
    # Nothing new was sent while the first could still land.
    assert node.block_height > expires_at
    node.release_landing()
    order = await final_status(client, order_id)
    assert order["status"] == "CONFIRMED", order
    signatures = await sent(deployment.database_url, order_id)
    assert len(landed(deployment.cluster, signatures)) == 1
    assert first[0] not in landed(deployment.cluster, signatures)


async def _last_valid(database_url: str, signature: str) -> int:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            row = await session.get(SentTransaction, signature)
            assert row is not None
            return row.last_valid_block_height
    finally:
        await engine.dispose()


async def _true(value: bool) -> bool:
    return value
