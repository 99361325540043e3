"""Configuring and starting on a real chain, as an operator does it: `order-engine venues
check` against our own JSON-RPC node (tests/solana_node) reports every pool or why it
cannot be traded, mainnet is refused unless allowed, a process refuses to start in rpc
mode on a missing wallet key or a venues file that does not load, and `/sim/*` is not
there in rpc mode.

The commands run as real subprocesses (`python -m cli …`); the node runs in the pytest
process, so a test can change what the cluster answers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from solders.pubkey import Pubkey

from devstack import InfraUrls
from devstack.ports import choose_port
from onchain import raydium_cpmm
from onchain.rpc import MAINNET_GENESIS_HASH
from onchain.spl import NATIVE_MINT
from tests.conftest import make_settings, running_api
from tests.http import is_problem
from tests.keys import KEY_SECRET_ENV, OPERATOR, auth
from tests.solana_node.market_setup import CPMM_POOL, DLMM_POOL, PUMP_MINT, ChainUnderTest, start_test_cluster

ROOT = Path(__file__).parents[2]
WALLET_KEY = Fernet.generate_key().decode()
# A process that refuses to start does so within seconds; one still running after this
# did not refuse.
REFUSAL_WITHIN_S = 60.0


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainUnderTest]:
    started = start_test_cluster(tmp_path_factory.mktemp("chain"), slot_ms=50)
    try:
        yield started
    finally:
        started.node.stop()


def base_env(data_dir: Path, **values: str) -> dict[str, str]:
    """The shell's environment without any ORDER_ENGINE_* of its own, plus `values`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_ENGINE_")}
    return {**inherited, "ORDER_ENGINE_DATA_DIR": str(data_dir), **values}


def chain_env(
    cluster: ChainUnderTest, data_dir: Path, venues_file: Path | None = None, **values: str
) -> dict[str, str]:
    chain = {
        "ORDER_ENGINE_RPC_URL": cluster.node.url,
        "ORDER_ENGINE_VENUES_FILE": str(venues_file or cluster.venues_file),
    }
    return base_env(data_dir, **{**chain, **values})


async def run(env: dict[str, str], *args: str, timeout_s: float = REFUSAL_WITHIN_S) -> Ran:
    """`order-engine ARGS` as a subprocess; a process still running after `timeout_s` is
    killed (by its pid) and the test fails with what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        os.kill(process.pid, signal.SIGKILL)
        out, err = await process.communicate()
        pytest.fail(
            f"`order-engine {' '.join(args)}` still running after {timeout_s:.0f} s: it did not "
            f"refuse to start.\nstdout: {out.decode()[-2000:]}\nstderr: {err.decode()[-2000:]}"
        )
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def venues_text(*pools: tuple[str, Pubkey]) -> str:
    text = f'[tokens.SOL]\nmint = "{NATIVE_MINT}"\n[tokens.PUMP]\nmint = "{PUMP_MINT}"\n'
    for venue, address in pools:
        text += f'[[pools]]\nvenue = "{venue}"\naddress = "{address}"\n'
    return text


def written(directory: Path, text: str) -> Path:
    path = directory / "venues.toml"
    path.write_text(text)
    return path


# -- venues check ------------------------------------------------------------------------

POOL_LINE = re.compile(
    r"^✓ (?P<venue>\w+) (?P<address>\w+) (?P<pair>\w+/\w+): price (?P<price>[0-9.e+-]+), "
    r"liquidity (?P<liquidity>.+), fee (?P<fee>[0-9.e+-]+) bps$"
)


async def test_venues_check_prints_every_pool_with_pair_venue_price_liquidity_and_fee(
    cluster: ChainUnderTest, tmp_path: Path
) -> None:
    ran = await run(chain_env(cluster, tmp_path), "venues", "check")
    assert ran.code == 0, ran
    lines = ran.out.strip().splitlines()
    assert lines[0] == f"cluster genesis {cluster.node.genesis_hash}"
    found = {m["address"]: m for m in map(POOL_LINE.match, lines[1:]) if m is not None}
    assert set(found) == {str(DLMM_POOL), str(CPMM_POOL)}, ran.out
    assert found[str(DLMM_POOL)]["venue"] == "meteora_dlmm"
    assert found[str(CPMM_POOL)]["venue"] == "raydium_cpmm"
    for line in found.values():
        assert set(line["pair"].split("/")) == {"PUMP", "SOL"}
        assert float(line["fee"]) > 0
        assert "PUMP" in line["liquidity"] and "SOL" in line["liquidity"]
    # Both pools price PUMP in SOL near the DLMM pool's active bin (the CPMM pool was made so).
    for line in found.values():
        price = float(line["price"])
        in_sol = price if line["pair"] == "PUMP/SOL" else 1 / price
        assert abs(in_sol / float(cluster.dlmm_price) - 1) < 0.02, (line.group(0), cluster.dlmm_price)


async def test_venues_check_names_a_pool_that_does_not_exist_and_exits_1(
    cluster: ChainUnderTest, tmp_path: Path
) -> None:
    nowhere = Pubkey.new_unique()
    venues = written(tmp_path, venues_text(("meteora_dlmm", DLMM_POOL), ("raydium_cpmm", nowhere)))
    ran = await run(chain_env(cluster, tmp_path, venues), "venues", "check")
    assert ran.code == 1, ran
    assert f"✗ raydium_cpmm {nowhere}: no account at {nowhere}" in ran.out
    assert any(line.startswith(f"✓ meteora_dlmm {DLMM_POOL}") for line in ran.out.splitlines()), ran.out


async def test_venues_check_names_an_account_of_the_wrong_program_and_exits_1(
    cluster: ChainUnderTest, tmp_path: Path
) -> None:
    # The CPMM pool's address listed as a DLMM pool.
    venues = written(tmp_path, venues_text(("meteora_dlmm", CPMM_POOL)))
    ran = await run(chain_env(cluster, tmp_path, venues), "venues", "check")
    assert ran.code == 1, ran
    error = next(line for line in ran.out.splitlines() if line.startswith("✗"))
    assert error.startswith(f"✗ meteora_dlmm {CPMM_POOL}: ")
    assert f"owned by {raydium_cpmm.PROGRAM_ID}, not meteora_dlmm" in error


async def test_venues_check_on_a_file_that_does_not_parse_exits_1_with_the_reason(
    cluster: ChainUnderTest, tmp_path: Path
) -> None:
    venues = written(tmp_path, venues_text(("orca", DLMM_POOL)))
    ran = await run(chain_env(cluster, tmp_path, venues), "venues", "check")
    assert ran.code == 1, ran
    assert "the venues file does not load" in ran.err
    assert f"{venues}: pools #1: venue 'orca' is not one of meteora_dlmm, raydium_cpmm" in ran.err
    assert "Traceback" not in ran.err


async def test_venues_check_on_a_token_whose_mint_does_not_exist_names_it_for_every_pool(
    cluster: ChainUnderTest, tmp_path: Path
) -> None:
    nowhere = Pubkey.new_unique()
    text = venues_text(("meteora_dlmm", DLMM_POOL)) + f'[tokens.USDC]\nmint = "{nowhere}"\n'
    ran = await run(chain_env(cluster, tmp_path, written(tmp_path, text)), "venues", "check")
    assert ran.code == 1, ran
    assert f"✗ meteora_dlmm {DLMM_POOL}: tokens.USDC: no account at {nowhere}" in ran.out


async def test_venues_check_on_an_endpoint_that_does_not_answer_names_it_without_a_traceback(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{choose_port()}"  # nobody listens there
    venues = written(tmp_path, venues_text(("meteora_dlmm", DLMM_POOL)))
    env = base_env(
        tmp_path,
        ORDER_ENGINE_RPC_URL=url,
        ORDER_ENGINE_VENUES_FILE=str(venues),
        ORDER_ENGINE_RPC_TIMEOUT_S="1",
    )
    ran = await run(env, "venues", "check")
    assert ran.code == 1, ran
    assert f"{url} does not answer" in ran.err
    assert "Traceback" not in ran.err


async def test_venues_check_without_its_settings_says_which_to_set(tmp_path: Path) -> None:
    ran = await run(base_env(tmp_path), "venues", "check")
    assert ran.code == 2
    assert "ORDER_ENGINE_RPC_URL" in ran.err and "ORDER_ENGINE_VENUES_FILE" in ran.err


@pytest.fixture
def mainnet(cluster: ChainUnderTest) -> Iterator[ChainUnderTest]:
    """The cluster answering mainnet's genesis hash for one test."""
    node = cluster.node
    own = node.genesis_hash
    node.genesis_hash = MAINNET_GENESIS_HASH
    try:
        yield cluster
    finally:
        node.genesis_hash = own


async def test_mainnet_is_refused_unless_allowed(mainnet: ChainUnderTest, tmp_path: Path) -> None:
    refused = await run(chain_env(mainnet, tmp_path), "venues", "check")
    assert refused.code == 1, refused
    assert "mainnet" in refused.err and "ORDER_ENGINE_ALLOW_MAINNET=true" in refused.err
    assert "✓" not in refused.out  # not one pool was reported

    allowed = await run(chain_env(mainnet, tmp_path, ORDER_ENGINE_ALLOW_MAINNET="true"), "venues", "check")
    assert allowed.code == 0, allowed
    assert f"cluster genesis {MAINNET_GENESIS_HASH}" in allowed.out


# -- processes refuse to start -------------------------------------------------------------


def process_env(
    infra: InfraUrls, cluster: ChainUnderTest, data_dir: Path, venues_file: Path | None = None, **values: str
) -> dict[str, str]:
    process = {
        **infra.as_env(),
        **KEY_SECRET_ENV,
        "ORDER_ENGINE_MARKET": "rpc",
        "ORDER_ENGINE_API_PORT": "0",
        # Wide enough that a refusal's message is never wrapped inside a path or an address.
        "COLUMNS": "250",
    }
    return chain_env(cluster, data_dir, venues_file, **{**process, **values})


def assert_refused(ran: Ran) -> None:
    """Exit 1 with one line that says why, not a traceback."""
    assert ran.code == 1, ran
    assert "order-engine: refusing to start: " in ran.err, ran
    assert "Traceback" not in ran.out + ran.err, ran


def said(ran: Ran) -> str:
    """What the process printed, lines joined (a traceback's renderer wraps long lines)."""
    return " ".join((ran.out + ran.err).split())


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_process_refuses_to_start_in_rpc_mode_without_a_wallet_key(
    infra: InfraUrls, cluster: ChainUnderTest, tmp_path: Path, command: str
) -> None:
    ran = await run(process_env(infra, cluster, tmp_path), command)
    assert_refused(ran)
    assert "ORDER_ENGINE_WALLET_KEY is not set" in said(ran)


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_process_refuses_to_start_in_rpc_mode_on_a_wallet_key_that_is_not_a_fernet_key(
    infra: InfraUrls, cluster: ChainUnderTest, tmp_path: Path, command: str
) -> None:
    ran = await run(process_env(infra, cluster, tmp_path, ORDER_ENGINE_WALLET_KEY="hunter2"), command)
    assert_refused(ran)
    assert "ORDER_ENGINE_WALLET_KEY is not a Fernet key" in said(ran)
    assert "hunter2" not in said(ran)


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_process_refuses_to_start_on_a_venues_file_that_does_not_load(
    infra: InfraUrls, cluster: ChainUnderTest, tmp_path: Path, command: str
) -> None:
    venues = written(tmp_path, "[tokens.SOL\n")
    ran = await run(
        process_env(infra, cluster, tmp_path, venues, ORDER_ENGINE_WALLET_KEY=WALLET_KEY), command
    )
    assert_refused(ran)
    assert f"{venues}: not valid TOML" in said(ran)


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_process_refuses_to_start_on_a_pool_that_cannot_be_traded(
    infra: InfraUrls, cluster: ChainUnderTest, tmp_path: Path, command: str
) -> None:
    nowhere = Pubkey.new_unique()
    venues = written(tmp_path, venues_text(("meteora_dlmm", DLMM_POOL), ("raydium_cpmm", nowhere)))
    ran = await run(
        process_env(infra, cluster, tmp_path, venues, ORDER_ENGINE_WALLET_KEY=WALLET_KEY), command
    )
    assert_refused(ran)
    assert f"{nowhere}: no account at {nowhere}" in said(ran)
    assert "venues check" in said(ran)  # where to look next


# -- /sim in rpc mode ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def rpc_api(
    infra: InfraUrls, cluster: ChainUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """An API process in rpc mode (no worker: nothing here executes an order)."""
    settings = make_settings(
        infra,
        tmp_path_factory.mktemp("rpc-api"),
        ORDER_ENGINE_MARKET="rpc",
        ORDER_ENGINE_RPC_URL=cluster.node.url,
        ORDER_ENGINE_VENUES_FILE=str(cluster.venues_file),
        ORDER_ENGINE_WALLET_KEY=WALLET_KEY,
    )
    async with running_api(settings) as url:
        yield url


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/sim/price", {"pair": "SOL/PUMP", "move_bps": 10}),
        ("POST", "/sim/wallet", {"token": "SOL", "amount": "1"}),
        ("POST", "/sim/pools", {"token": "NEW", "liquidity": "1000", "price": "1"}),
        ("POST", "/sim/congestion", {"level": 0.5}),
    ],
)
async def test_sim_controls_answer_404_problem_json_in_rpc_mode_even_for_an_operator(
    rpc_api: str, method: str, path: str, body: dict[str, object] | None
) -> None:
    async with httpx.AsyncClient(base_url=rpc_api, headers=auth(OPERATOR), timeout=30) as client:
        response = await client.request(method, path, json=body)
    assert is_problem(response, 404, "not_found"), (response.status_code, response.text)
    assert "ORDER_ENGINE_MARKET=rpc" in response.json()["detail"]


async def test_the_rpc_api_serves_the_chains_pools(rpc_api: str) -> None:
    """The same process answers what the cluster has: the /sim 404s are not a dead API."""
    async with httpx.AsyncClient(base_url=rpc_api, headers=auth(OPERATOR), timeout=30) as client:
        response = await client.get("/markets")
    assert response.status_code == 200, response.text
    pools = response.json()["items"]
    assert sorted(pool["dex"] for pool in pools) == ["meteora", "raydium"], pools


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_process_refuses_to_start_on_mainnet_unless_allowed(
    infra: InfraUrls, mainnet: ChainUnderTest, tmp_path: Path, command: str
) -> None:
    ran = await run(process_env(infra, mainnet, tmp_path, ORDER_ENGINE_WALLET_KEY=WALLET_KEY), command)
    assert_refused(ran)
    assert "ORDER_ENGINE_ALLOW_MAINNET=true" in said(ran)


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_process_refuses_to_start_when_the_rpc_endpoint_does_not_answer(
    infra: InfraUrls, cluster: ChainUnderTest, tmp_path: Path, command: str
) -> None:
    env = process_env(
        infra,
        cluster,
        tmp_path,
        ORDER_ENGINE_WALLET_KEY=WALLET_KEY,
        ORDER_ENGINE_RPC_URL=f"http://127.0.0.1:{choose_port()}",  # nobody listens there
        ORDER_ENGINE_RPC_TIMEOUT_S="1",
    )
    ran = await run(env, command)
    assert_refused(ran)
    assert "RPC" in said(ran)
