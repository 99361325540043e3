"""Owners' own keypairs on the real chain: an operator imports or creates one with the CLI
(stored only sealed), GET /wallet shows its address and the chain's balances with the
engine's own holds, a placement reserves against what the chain holds now, and an owner
without a keypair is refused with nothing stored.

The API runs with wallets on a fake chain (`ChainBalances`, as onchain/ implements it
over JSON-RPC) on a Temporal of its own with no worker: accepted orders stay held."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from solders.keypair import Keypair
from sqlalchemy import func, select
from sqlmodel import col
from temporalio.testing import WorkflowEnvironment

import composition
from core.domain import ReservationState, WalletCustody
from core.temporal import SEARCH_ATTRIBUTE_KEYS
from devstack import InfraUrls
from devstack.temporal import DYNAMIC_CONFIG_ARGS, temporal_binary
from market import build_market
from storage.database import create_engine, create_sessionmaker
from storage.models import Order, Reservation, Wallet, WalletBalance
from tests.conftest import make_settings, running_api
from tests.http import is_problem
from tests.keys import KEY_SECRET_ENV, auth, create_test_key
from wallets.custody import KeypairSeal
from wallets.service import Wallets

ROOT = Path(__file__).parents[2]
WALLET_KEY = Fernet.generate_key().decode()
SOL = 10**9
USDC = 10**6


@dataclass
class FakeChain:
    """Balances per address, as a test sets them."""

    held: dict[str, dict[str, int]] = field(default_factory=dict)

    async def balances(self, address: str) -> dict[str, int]:
        return dict(self.held.get(address, {"SOL": 0, "USDC": 0}))


@dataclass(frozen=True)
class OnChainApi:
    url: str
    chain: FakeChain
    database_url: str


def owner_name(what: str) -> str:
    return f"custody-{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def on_chain_api(
    infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OnChainApi]:
    chain = FakeChain()
    temporal = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        search_attributes=SEARCH_ATTRIBUTE_KEYS,
        dev_server_extra_args=DYNAMIC_CONFIG_ARGS,
    )
    settings = make_settings(
        infra,
        tmp_path_factory.mktemp("custody"),
        TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
        ORDER_ENGINE_WALLET_KEY=WALLET_KEY,
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            # Where the composition builds the wallets: on the fake chain.
            patch.setattr(composition, "build_market", partial(build_market, chain_balances=chain))
            async with running_api(settings) as url:
                yield OnChainApi(url, chain, infra.database_url)
    finally:
        await temporal.shutdown()


async def hold(database_url: str, owner: str, keypair: Keypair) -> str:
    """What `order-engine wallets import` does."""
    engine = create_engine(database_url, pool_size=1)
    try:
        seal = KeypairSeal(SecretStr(WALLET_KEY))
        return await Wallets(create_sessionmaker(engine), {}, seal=seal).hold(owner, keypair)
    finally:
        await engine.dispose()


async def rows_of(
    database_url: str, owner: str
) -> tuple[int, Wallet | None, list[WalletBalance], list[Reservation]]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            orders = await session.scalar(select(func.count()).where(col(Order.owner) == owner))
            wallet = await session.get(Wallet, owner)
            balances = (
                await session.execute(select(WalletBalance).where(col(WalletBalance.owner) == owner))
            ).scalars()
            held = (
                await session.execute(select(Reservation).where(col(Reservation.owner) == owner))
            ).scalars()
            return int(orders or 0), wallet, list(balances), list(held)
    finally:
        await engine.dispose()


def balances_of(wallet: dict[str, object]) -> dict[str, dict[str, str]]:
    rows = wallet["balances"]
    assert isinstance(rows, list)
    return {row["token"]: {k: row[k] for k in ("total", "reserved", "available")} for row in rows}


def sol(units: int) -> str:
    return str(Decimal(units) / SOL)


MARKET_ORDER = {"type": "market", "token_in": "SOL", "token_out": "USDC", "amount": "0.5"}


async def test_an_imported_wallet_shows_the_chains_balances_with_the_engines_holds(
    on_chain_api: OnChainApi,
) -> None:
    owner, keypair = owner_name("trader"), Keypair()
    address = await hold(on_chain_api.database_url, owner, keypair)
    assert address == str(keypair.pubkey())
    on_chain_api.chain.held[address] = {"SOL": 2 * SOL, "USDC": 50 * USDC}
    key = await create_test_key(on_chain_api.database_url, owner)
    async with httpx.AsyncClient(base_url=on_chain_api.url, timeout=30, headers=auth(key)) as client:
        before = (await client.get("/wallet")).json()
        assert before["address"] == address
        assert balances_of(before) == {
            "SOL": {"total": "2", "reserved": "0", "available": "2"},
            "USDC": {"total": "50", "reserved": "0", "available": "50"},
        }

        placed = await client.post("/orders", json=MARKET_ORDER)
        assert placed.status_code == 202, placed.text
        _, _, _, [held] = await rows_of(on_chain_api.database_url, owner)
        assert held.state is ReservationState.HELD and int(held.amount) == SOL // 2
        reserved = int(held.amount) + int(held.fee_lamports)

        after = balances_of((await client.get("/wallet")).json())
        assert after["SOL"] == {"total": "2", "reserved": sol(reserved), "available": sol(2 * SOL - reserved)}
        assert after["USDC"] == {"total": "50", "reserved": "0", "available": "50"}

        # Someone spent from the address outside the engine: the chain has less than the
        # engine's orders hold. Nothing is available, and a new order does not fit.
        on_chain_api.chain.held[address] = {"SOL": SOL // 10, "USDC": 50 * USDC}
        drained = balances_of((await client.get("/wallet")).json())
        assert drained["SOL"] == {"total": "0.1", "reserved": sol(reserved), "available": "0"}
        refused = await client.post("/orders", json={**MARKET_ORDER, "amount": "0.05"})
        assert is_problem(refused, 422, "insufficient_funds"), refused.text

        # The chain received more: the next placement reserves against it.
        on_chain_api.chain.held[address] = {"SOL": 3 * SOL, "USDC": 50 * USDC}
        assert (await client.post("/orders", json=MARKET_ORDER)).status_code == 202
    orders, wallet, balances, holds = await rows_of(on_chain_api.database_url, owner)
    assert orders == 2 and len(holds) == 2
    assert wallet is not None and wallet.custody is WalletCustody.HELD and wallet.seed == ""
    sol_row = next(row for row in balances if row.token == "SOL")
    assert int(sol_row.total) == 3 * SOL and int(sol_row.reserved) == sum(
        int(h.amount) + int(h.fee_lamports) for h in holds
    )


async def test_an_owner_without_a_keypair_is_refused_and_nothing_is_stored(on_chain_api: OnChainApi) -> None:
    owner = owner_name("nobody")
    key = await create_test_key(on_chain_api.database_url, owner)
    async with httpx.AsyncClient(base_url=on_chain_api.url, timeout=30, headers=auth(key)) as client:
        refused = await client.post("/orders", json=MARKET_ORDER, headers={"Idempotency-Key": "custody-1"})
        assert is_problem(refused, 422, "no_wallet"), refused.text
        assert "order-engine wallets import" in refused.json()["detail"]
        assert is_problem(await client.get("/wallet"), 422, "no_wallet")
    # Not made at first use, as a simulated wallet would be.
    assert await rows_of(on_chain_api.database_url, owner) == (0, None, [], [])


async def test_a_simulated_wallet_never_signs_on_the_chain(on_chain_api: OnChainApi) -> None:
    """The same database used by the simulation before: its wallets are not the owner's."""
    owner = owner_name("simulated")
    engine = create_engine(on_chain_api.database_url, pool_size=1)
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            await Wallets(sessions, {"SOL": 5 * SOL}).ensure(session, owner)
    finally:
        await engine.dispose()
    key = await create_test_key(on_chain_api.database_url, owner)
    async with httpx.AsyncClient(base_url=on_chain_api.url, timeout=30, headers=auth(key)) as client:
        assert is_problem(await client.post("/orders", json=MARKET_ORDER), 422, "no_wallet")
        assert is_problem(await client.get("/wallet"), 422, "no_wallet")
    orders, _, _, holds = await rows_of(on_chain_api.database_url, owner)
    assert (orders, holds) == (0, [])


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "wallets",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def cli_env(infra: InfraUrls, tmp_path: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_ENGINE_")}
    return {
        **inherited,
        **infra.as_env(),
        **KEY_SECRET_ENV,
        "ORDER_ENGINE_DATA_DIR": str(tmp_path),
        "ORDER_ENGINE_WALLET_KEY": WALLET_KEY,
    }


def secret_forms(keypair: Keypair) -> list[str]:
    raw = bytes(keypair)
    return [str(keypair), raw.hex(), raw[:32].hex(), json.dumps(list(raw)), ",".join(map(str, raw[:32]))]


async def test_the_cli_imports_a_solana_keypair_file_sealed(cli_env: dict[str, str], tmp_path: Path) -> None:
    owner, keypair = owner_name("imported"), Keypair()
    keypair_file = tmp_path / "id.json"
    keypair_file.write_text(json.dumps(list(bytes(keypair))))

    code, out, err = await cli(cli_env, "import", "--owner", owner, "--keypair", str(keypair_file))
    assert code == 0, err
    assert out.strip() == str(keypair.pubkey())
    _, wallet, _, _ = await rows_of(cli_env["DATABASE_URL"], owner)
    assert wallet is not None and wallet.custody is WalletCustody.HELD and wallet.seed == ""
    assert wallet.sealed_keypair is not None
    stored = " ".join(str(v) for v in wallet.model_dump().values()) + wallet.sealed_keypair
    for form in secret_forms(keypair):
        assert form not in stored and form not in out + err
    # Only the key opens it.
    assert bytes(KeypairSeal(SecretStr(WALLET_KEY)).open(wallet.sealed_keypair)) == bytes(keypair)

    again = Keypair()
    keypair_file.write_text(json.dumps(list(bytes(again))))
    code, _, err = await cli(cli_env, "import", "--owner", owner, "--keypair", str(keypair_file))
    assert code != 0 and "already has a wallet" in err and str(keypair.pubkey()) in err
    _, kept, _, _ = await rows_of(cli_env["DATABASE_URL"], owner)
    assert kept is not None and kept.address == str(keypair.pubkey())


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2, 3]", "3 elements"),
        ("not json", "not JSON"),
        (json.dumps([*range(63), 300]), "element 63 is not an integer 0..255"),
        (None, "its public half"),  # a secret half with another key's public half
    ],
)
async def test_the_cli_refuses_a_bad_keypair_file_and_stores_nothing(
    cli_env: dict[str, str], tmp_path: Path, content: str | None, reason: str
) -> None:
    owner = owner_name("badfile")
    if content is None:
        content = json.dumps(list(bytes(Keypair())[:32] + bytes(Keypair().pubkey())))
    keypair_file = tmp_path / "id.json"
    keypair_file.write_text(content)
    code, out, err = await cli(cli_env, "import", "--owner", owner, "--keypair", str(keypair_file))
    assert code != 0 and reason in err, err
    assert "Traceback" not in err and out == ""
    assert (await rows_of(cli_env["DATABASE_URL"], owner))[1] is None


async def test_the_cli_creates_a_keypair_and_prints_only_its_address(cli_env: dict[str, str]) -> None:
    owner = owner_name("created")
    code, out, err = await cli(cli_env, "create", "--owner", owner)
    assert code == 0, err
    _, wallet, _, _ = await rows_of(cli_env["DATABASE_URL"], owner)
    assert wallet is not None and wallet.sealed_keypair is not None
    assert out.strip() == wallet.address and err == ""
    keypair = KeypairSeal(SecretStr(WALLET_KEY)).open(wallet.sealed_keypair)
    assert str(keypair.pubkey()) == wallet.address
    for form in secret_forms(keypair):
        assert form not in wallet.sealed_keypair and form not in out

    code, _, err = await cli(cli_env, "create", "--owner", owner)
    assert code != 0 and "already has a wallet" in err


@pytest.mark.parametrize("key", ["", "not-a-fernet-key"])
async def test_the_cli_refuses_without_a_valid_wallet_key(cli_env: dict[str, str], key: str) -> None:
    owner = owner_name("keyless")
    code, _, err = await cli({**cli_env, "ORDER_ENGINE_WALLET_KEY": key}, "create", "--owner", owner)
    assert code != 0 and "ORDER_ENGINE_WALLET_KEY" in err and "Traceback" not in err
    assert (await rows_of(cli_env["DATABASE_URL"], owner))[1] is None
