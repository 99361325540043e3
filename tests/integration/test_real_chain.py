"""The same workflows on a real chain (ORDER_ENGINE_MARKET=rpc), against our own JSON-RPC
node (tests/solana_node): a real mainnet DLMM pool and a CPMM pool of the same pair, the
venues' programs emulated, transactions executed atomically with exact metas.

What a trader relies on: the order CONFIRMS with the fill the chain reports, the wallet
moves by exactly what the order says, and whatever the cluster or its RPC does (expiry,
a pool that moves, 429s and timeouts) no order lands two swaps."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.signature import Signature
from sqlalchemy import select
from sqlmodel import col

from devstack import InfraUrls
from onchain.spl import NATIVE_MINT, TOKEN_PROGRAM, associated_token_address
from storage.database import create_engine, create_sessionmaker
from storage.models import SentTransaction
from tests.conftest import isolated_engine
from tests.keys import auth, create_test_key
from tests.solana_node.market_setup import (
    PUMP_MINT,
    ChainUnderTest,
    drain_cpmm,
    new_trader,
    price_cpmm,
    start_test_cluster,
    vault_amounts,
)
from tests.streams import TERMINAL
from wallets.custody import KeypairSeal
from wallets.service import Wallets

WALLET_KEY = Fernet.generate_key().decode()
SOL = 10**9


@dataclass
class ChainEngine:
    api: str
    cluster: ChainUnderTest
    database_url: str

    async def trader(self, sol: int = 5 * SOL) -> tuple[httpx.AsyncClient, Keypair]:
        """A new owner with an API key and its own keypair held by the engine."""
        owner = f"chain-{uuid.uuid4().hex[:10]}"
        key = await create_test_key(self.database_url, owner)
        keypair = new_trader(self.cluster.node, sol)
        engine = create_engine(self.database_url, pool_size=1)
        try:
            await Wallets(create_sessionmaker(engine), {}, seal=KeypairSeal(SecretStr(WALLET_KEY))).hold(
                owner, keypair
            )
        finally:
            await engine.dispose()
        return httpx.AsyncClient(base_url=self.api, timeout=60, headers=auth(key)), keypair

    async def sent(self, order_id: str) -> list[SentTransaction]:
        engine = create_engine(self.database_url, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = await session.execute(
                    select(SentTransaction).where(col(SentTransaction.order_id) == order_id)
                )
                return list(rows.scalars())
        finally:
            await engine.dispose()


@contextlib.asynccontextmanager
async def engine_on(infra: InfraUrls, directory: Path, cluster: ChainUnderTest) -> AsyncIterator[ChainEngine]:
    """A worker and an API in rpc mode on `cluster` (stopped, with the node, on exit)."""
    try:
        async with isolated_engine(
            infra,
            directory,
            ORDER_ENGINE_MARKET="rpc",
            ORDER_ENGINE_RPC_URL=cluster.node.url,
            ORDER_ENGINE_VENUES_FILE=str(cluster.venues_file),
            ORDER_ENGINE_WALLET_KEY=WALLET_KEY,
            ORDER_ENGINE_RPC_TIMEOUT_S=2,
        ) as url:
            yield ChainEngine(url, cluster, infra.database_url)
    finally:
        cluster.node.stop()


@pytest.fixture(scope="module")
async def chain_engine(
    infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ChainEngine]:
    directory = tmp_path_factory.mktemp("chain")
    async with engine_on(infra, directory, start_test_cluster(directory, slot_ms=50)) as engine:
        yield engine


def on_chain(cluster: ChainUnderTest, owner: Keypair) -> dict[str, int]:
    """The owner's SOL (lamports) and PUMP (base units) as the node holds them."""
    node = cluster.node
    account = node.account(owner.pubkey())
    pump = node.account(associated_token_address(owner.pubkey(), PUMP_MINT, TOKEN_PROGRAM))
    return {
        "SOL": account.lamports if account else 0,
        "PUMP": int.from_bytes(pump.data[64:72], "little") if pump else 0,
    }


async def final(client: httpx.AsyncClient, order_id: str, timeout: float = 120) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            order: dict[str, Any] = (await client.get(f"/orders/{order_id}")).json()
            if order["status"] in TERMINAL:
                return order
            await asyncio.sleep(0.1)


async def status_reached(client: httpx.AsyncClient, order_id: str, status: str) -> None:
    async with asyncio.timeout(60):
        while (await client.get(f"/orders/{order_id}")).json()["status"] != status:
            await asyncio.sleep(0.05)


def landed_with(cluster: ChainUnderTest, signatures: list[str], failed: bool = False) -> list[str]:
    """Which of the signatures landed (and succeeded, or failed), as the node says."""
    found = []
    for signature in signatures:
        landed = cluster.node.landed(Signature.from_string(signature))
        if landed is not None and (landed.execution.error is not None) == failed:
            found.append(signature)
    return found


async def failures_of(client: httpx.AsyncClient, order_id: str) -> list[dict[str, Any]]:
    timeline = (await client.get(f"/orders/{order_id}/events")).json()["items"]
    return [item for item in timeline if item["type"] == "FAILURE"]


async def place(client: httpx.AsyncClient, **order: Any) -> str:
    body = {"token_in": "SOL", "token_out": "PUMP", "amount": "0.05", "slippage_bps": 300, **order}
    response = await client.post("/orders", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["order_id"])


async def test_a_market_order_confirms_with_the_chains_fill_and_the_wallet_moves_by_exactly_it(
    chain_engine: ChainEngine,
) -> None:
    client, owner = await chain_engine.trader()
    async with client:
        before = on_chain(chain_engine.cluster, owner)
        order_id = await place(client)
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        after = on_chain(chain_engine.cluster, owner)
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
        assert len(txs) == 1
        landing = txs[0]["landing"]
        fees = landing["fees"]
        spent_sol = before["SOL"] - after["SOL"]
        paid = fees["network_lamports"] + fees["priority_lamports"] + fees["tip_lamports"]
        assert spent_sol == 5 * 10**7 + paid + fees["rent_lamports"], (spent_sol, fees)
        assert fees["rent_lamports"] > 0  # the PUMP account was made for it
        received = after["PUMP"] - before["PUMP"]
        assert Decimal(txs[0]["amount_out"]) == Decimal(received) / 10**6, (txs[0], received)
        # The order itself reports what moved the wallet: amounts, fees and rent.
        assert order["fees"]["rent_lamports"] == fees["rent_lamports"]
        assert Decimal(order["amount_out"]) == Decimal(received) / 10**6
        wallet = (await client.get("/wallet")).json()
        balances = {b["token"]: b for b in wallet["balances"]}
        assert Decimal(balances["PUMP"]["total"]) == Decimal(after["PUMP"]) / 10**6
        assert Decimal(balances["SOL"]["reserved"]) == 0
        assert landed_with(
            chain_engine.cluster, [s.signature for s in await chain_engine.sent(order_id)]
        ) == [txs[0]["tx_hash"]]


async def test_an_expired_transaction_is_sent_anew_with_a_new_blockhash_and_lands_once(
    chain_engine: ChainEngine,
) -> None:
    node = chain_engine.cluster.node
    client, _ = await chain_engine.trader()
    async with client:
        node.hold_landing()
        try:
            order_id = await place(client)
            await status_reached(client, order_id, "SUBMITTED")
            # The first transaction never lands; its blockhash expires, the order re-sends.
            async with asyncio.timeout(60):
                while len(await chain_engine.sent(order_id)) < 2:
                    await asyncio.sleep(0.1)
        finally:
            node.release_landing()
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        sent = await chain_engine.sent(order_id)
        blockhashes = {s.last_valid_block_height for s in sent}
        assert len(blockhashes) == len(sent) >= 2
        assert len(landed_with(chain_engine.cluster, [s.signature for s in sent])) == 1
        failures = await failures_of(client, order_id)
        assert any(f["code"] == "TRANSACTION_EXPIRED" for f in failures), failures


async def test_a_swap_that_lands_but_fails_on_slippage_pays_its_fee_and_the_order_requotes(
    chain_engine: ChainEngine,
) -> None:
    node = chain_engine.cluster.node
    client, _ = await chain_engine.trader()
    async with client:
        node.hold_landing()
        try:
            order_id = await place(client, dexes=["raydium"], slippage_bps=10, amount="0.2")
            await status_reached(client, order_id, "SUBMITTED")
            drain_cpmm(node, PUMP_MINT, Decimal("0.05"))  # the pool moved under the order
        finally:
            node.release_landing()
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        failures = await failures_of(client, order_id)
        landed_and_failed = [
            f for f in failures if f["code"] == "SLIPPAGE_EXCEEDED" and f["stage"] == "chain"
        ]
        assert len(landed_and_failed) == 1 and landed_and_failed[0]["fee_lamports"] > 0, failures
        sent = await chain_engine.sent(order_id)
        assert len(landed_with(chain_engine.cluster, [s.signature for s in sent])) == 1
        assert len(landed_with(chain_engine.cluster, [s.signature for s in sent], failed=True)) == 1
        # The failed landing's fee came out of the order's fee hold: nothing stays reserved.
        balances = {b["token"]: b for b in (await client.get("/wallet")).json()["balances"]}
        assert Decimal(balances["SOL"]["reserved"]) == 0, balances


async def test_selling_into_sol_with_wrapped_sol_already_held_reports_only_the_swaps_sol(
    chain_engine: ChainEngine,
) -> None:
    """The owner already holds wrapped SOL; the swap's account is closed at the end, which
    hands that back as lamports too: the order reports only what the pool paid."""
    node = chain_engine.cluster.node
    client, owner = await chain_engine.trader()
    node.mint_tokens_to(owner.pubkey(), PUMP_MINT, 50 * 10**6)
    wrapped = node.mint_tokens_to(owner.pubkey(), NATIVE_MINT, 3 * 10**8)
    held_before = node.account(wrapped)
    assert held_before is not None
    async with client:
        vaults_before = vault_amounts(node)
        lamports_before = on_chain(chain_engine.cluster, owner)["SOL"]
        order_id = await place(client, token_in="PUMP", token_out="SOL", amount="20", dexes=["raydium"])
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        paid_by_pool = vaults_before[NATIVE_MINT] - vault_amounts(node)[NATIVE_MINT]
        assert Decimal(order["amount_out"]) * 10**9 == paid_by_pool
        fees = order["fees"]
        spent = (
            fees["network_lamports"]
            + fees["priority_lamports"]
            + fees["tip_lamports"]
            + fees["rent_lamports"]
        )
        lamports_after = on_chain(chain_engine.cluster, owner)["SOL"]
        assert lamports_after - lamports_before == paid_by_pool - spent + held_before.lamports


async def test_rpc_429s_and_timeouts_are_retried_and_the_order_lands_once(chain_engine: ChainEngine) -> None:
    node = chain_engine.cluster.node
    client, _ = await chain_engine.trader()
    async with client:
        node.fail_next("sendTransaction", 1, "429")
        node.fail_next("getSignatureStatuses", 2, "timeout")
        node.fail_next("getLatestBlockhash", 1, "500")
        order_id = await place(client)
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        sent = await chain_engine.sent(order_id)
        assert len(landed_with(chain_engine.cluster, [s.signature for s in sent])) == 1


async def test_an_owner_without_a_keypair_is_refused_and_sim_controls_are_not_found(
    chain_engine: ChainEngine,
) -> None:
    owner = f"nokey-{uuid.uuid4().hex[:8]}"
    key = await create_test_key(chain_engine.database_url, owner)
    async with httpx.AsyncClient(base_url=chain_engine.api, headers=auth(key)) as client:
        refused = await client.post(
            "/orders", json={"token_in": "SOL", "token_out": "PUMP", "amount": "0.05"}
        )
        assert refused.status_code == 422 and refused.json()["code"] == "no_wallet"
        assert (await client.post("/sim/price", json={"pair": "SOL/PUMP", "move_bps": 10})).status_code in (
            403,
            404,
        )
        tokens = {t["symbol"]: t["mint"] for t in (await client.get("/tokens")).json()["items"]}
        assert tokens == {"SOL": "So11111111111111111111111111111111111111112", "PUMP": str(PUMP_MINT)}
        markets = {(m["dex"], m["pair"]) for m in (await client.get("/markets")).json()["items"]}
        assert markets == {("meteora", "PUMP/SOL"), ("raydium", "SOL/PUMP")}


async def test_a_limit_order_waits_on_the_chains_prices_and_fires_when_a_pool_moves(
    chain_engine: ChainEngine,
) -> None:
    """The watcher prices waiting orders from pool state fetched over JSON-RPC."""
    node = chain_engine.cluster.node
    client, _ = await chain_engine.trader()
    async with client:
        quote = (
            await client.post("/quotes", json={"token_in": "SOL", "token_out": "PUMP", "amount": "0.05"})
        ).json()
        best = Decimal(quote["price"])
        order_id = await place(
            client, type="limit", limit_price=str((best * Decimal("1.04")).quantize(Decimal(1)))
        )
        await status_reached(client, order_id, "WAITING")
        fetches = node.calls.count("getMultipleAccounts")
        drain_cpmm(node, PUMP_MINT, Decimal("-0.12"))  # PUMP got cheaper on Raydium
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        assert Decimal(order["amount_out"]) >= Decimal(order["min_amount_out"])
        assert node.calls.count("getMultipleAccounts") > fetches  # the watcher read the pools anew


async def test_a_split_route_is_one_transaction_with_a_swap_on_each_venue(chain_engine: ChainEngine) -> None:
    client, owner = await chain_engine.trader()
    async with client:
        markets = {m["dex"]: m for m in (await client.get("/markets")).json()["items"]}
        # Raydium a little dearer than Meteora's active bin (which charges 1 %, Raydium
        # 0.25 %): the best fill takes Meteora's bins until they cost as much, then Raydium.
        sol_per_pump = Decimal(markets["meteora"]["mid_price"])
        price_cpmm(chain_engine.cluster.node, sol_per_pump * Decimal("1.01") * 1000)  # lamports per base unit
        before = on_chain(chain_engine.cluster, owner)
        order_id = await place(client, amount="0.5", slippage_bps=500)
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", order
        assert {leg["dex"] for leg in order["route"]} == {"raydium", "meteora"}, order["route"]
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
        assert len(txs) == 1 and txs[0]["dex"] == "split" and len(txs[0]["legs"]) == 2
        received = on_chain(chain_engine.cluster, owner)["PUMP"] - before["PUMP"]
        assert sum(Decimal(leg["amount_out"]) for leg in txs[0]["legs"]) == Decimal(received) / 10**6


def test_the_engine_asked_the_cluster_only_the_allowed_methods(chain_engine: ChainEngine) -> None:
    allowed = {
        "getAccountInfo", "getMultipleAccounts", "getLatestBlockhash", "getBlockHeight", "getSlot",
        "getRecentPrioritizationFees", "simulateTransaction", "sendTransaction", "getSignatureStatuses",
        "getTransaction", "getBalance", "getTokenAccountsByOwner", "getTokenAccountBalance",
        "getMinimumBalanceForRentExemption", "getGenesisHash", "getHealth",
    }  # fmt: skip
    asked = set(chain_engine.cluster.node.calls)
    assert asked and asked <= allowed, asked - allowed


async def test_a_node_that_is_behind_delays_the_order_but_never_lands_it_twice(
    chain_engine: ChainEngine,
) -> None:
    node = chain_engine.cluster.node
    client, _ = await chain_engine.trader()
    async with client:
        node.behind(40)  # 2 s of 50 ms slots: statuses, heights and blockhashes lag
        try:
            order_id = await place(client)
            order = await final(client, order_id)
        finally:
            node.behind(0)
        assert order["status"] == "CONFIRMED", order
        sent = await chain_engine.sent(order_id)
        assert len(landed_with(chain_engine.cluster, [s.signature for s in sent])) == 1
