"""The real chain (ORDER_ENGINE_MARKET=rpc), on our own JSON-RPC node over the mainnet
fixtures (tests/solana_node; loopback only):

- quote time from decoded state: a pool's accounts decoded into the router's pool, and
  one quote on it, for each fixture DLMM pool and a CPMM pool made with our encoder;
- the RPC requests of one market order, from POST /orders to CONFIRMED, by method, and
  its critical path in round trips: requests that overlap in time (asked together) count
  once. The engine's worker and API run as processes, as in production.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from functools import partial
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from pydantic import SecretStr
from solders.pubkey import Pubkey

from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from devstack.engine import QUIET_MARKET, EngineProcesses
from onchain import meteora_dlmm, raydium_cpmm
from storage.database import create_engine, create_sessionmaker
from tests.solana_node.fixtures import fixtures_directory, load_fixture_accounts
from tests.solana_node.market_setup import CPMM_POOL, DLMM_POOL, new_trader, start_test_cluster
from tests.solana_node.node import SolanaNode
from wallets.custody import KeypairSeal
from wallets.service import Wallets

CHAIN = "chain"
QUOTE_CALLS = 300
ORDERS = 5
SOL = 10**9


def _timed_us(call: object, calls: int) -> tuple[float, float]:
    assert callable(call)
    for _ in range(10):
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return percentile(samples, 50), percentile(samples, 99)


def quote_figures(node: SolanaNode) -> list[Figure]:
    """Decode + quote per pool, from the node's accounts (no RPC: the bytes as fetched)."""
    figures: list[Figure] = []
    manifest_pools = [DLMM_POOL, *_other_dlmm_pools()]
    for address in manifest_pools:
        account = node.account(address)
        assert account is not None
        pair = meteora_dlmm.decode_lb_pair(address, account.data)
        indexes = meteora_dlmm.bin_arrays_around(pair, None, 3)
        arrays = [
            meteora_dlmm.decode_bin_array(key, found.data)
            for index in indexes
            if (found := node.account(key := meteora_dlmm.bin_array_address(address, index))) is not None
        ]

        book = meteora_dlmm.dlmm_book(pair, arrays)
        amount = max(1, sum(y for _, y in book.bins.values()) // 100)  # 1 % of the Y side
        decode_p50, _ = _timed_us(partial(_decode_dlmm, address, account.data, arrays), QUOTE_CALLS)
        quote_p50, quote_p99 = _timed_us(partial(book.swap, amount, False, int(time.time())), QUOTE_CALLS)
        label = f"DLMM {str(address)[:4]}… ({len(book.bins)} bins)"
        figures += [
            Figure(CHAIN, f"{label} decode p50", decode_p50, "µs", note="lb_pair + bin arrays → book"),
            Figure(CHAIN, f"{label} quote p50", quote_p50, "µs", note="1 % of its Y liquidity"),
            Figure(CHAIN, f"{label} quote p99", quote_p99, "µs"),
        ]
    state_account = node.account(CPMM_POOL)
    assert state_account is not None
    state = raydium_cpmm.decode_pool_state(CPMM_POOL, state_account.data)
    config_account = node.account(state.amm_config)
    assert config_account is not None
    config = raydium_cpmm.decode_amm_config(state.amm_config, config_account.data)
    pool = raydium_cpmm.cpmm_pool(state, config, 40 * SOL, 10**12, "A", "B")
    decode_p50, _ = _timed_us(
        lambda: raydium_cpmm.decode_pool_state(CPMM_POOL, state_account.data), QUOTE_CALLS
    )
    quote_p50, quote_p99 = _timed_us(lambda: pool.quote_swap("A", SOL), QUOTE_CALLS)
    figures += [
        Figure(CHAIN, "CPMM decode p50", decode_p50, "µs", note="pool state"),
        Figure(CHAIN, "CPMM quote p50", quote_p50, "µs", note="1 SOL of 40"),
        Figure(CHAIN, "CPMM quote p99", quote_p99, "µs"),
    ]
    return figures


def _decode_dlmm(address: Pubkey, data: bytes, arrays: list[meteora_dlmm.BinArray]) -> None:
    meteora_dlmm.dlmm_book(meteora_dlmm.decode_lb_pair(address, data), arrays)


def _other_dlmm_pools() -> list[Pubkey]:
    accounts = load_fixture_accounts(fixtures_directory())
    return [
        address
        for address, account in accounts.items()
        if account.owner == meteora_dlmm.PROGRAM_ID
        and address != DLMM_POOL
        and account.data[:8] == meteora_dlmm.LB_PAIR_DISCRIMINATOR
    ]


def round_trips(calls: list[tuple[str, float, float]]) -> int:
    """Requests in sequence: ones that overlap in time count once."""
    trips, busy_until = 0, -1.0
    for _, started, answered in sorted(calls, key=lambda call: call[1]):
        if started >= busy_until:
            trips += 1
            busy_until = answered
        else:
            busy_until = max(busy_until, answered)
    return trips


async def order_figures(workbench: Workbench, node: SolanaNode, venues_file: Path) -> list[Figure]:
    # An engine of an earlier section polls the same task queues: its (simulated) worker
    # would take these orders. Ours is the only one while this section runs.
    workbench.stop_engine()
    wallet_key = Fernet.generate_key().decode()
    engine = EngineProcesses(
        workbench.urls,
        workbench.directory("chain-engine"),
        {
            **QUIET_MARKET,
            "ORDER_ENGINE_MARKET": "rpc",
            "ORDER_ENGINE_RPC_URL": node.url,
            "ORDER_ENGINE_VENUES_FILE": str(venues_file),
            "ORDER_ENGINE_WALLET_KEY": wallet_key,
        },
    )
    try:
        engine.start("worker")
        api = engine.start("api")
        owner = f"bench-chain-{uuid.uuid4().hex[:6]}"
        key = engine.new_key(owner)
        keypair = new_trader(node, 50 * SOL)
        db = create_engine(workbench.urls.database_url, pool_size=1)
        try:
            await Wallets(create_sessionmaker(db), {}, seal=KeypairSeal(SecretStr(wallet_key))).hold(
                owner, keypair
            )
        finally:
            await db.dispose()
        per_order: list[list[tuple[str, float, float]]] = []
        latencies: list[float] = []
        async with httpx.AsyncClient(
            base_url=str(api.url), headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            for _ in range(ORDERS + 1):  # the first warms the caches (pools, fee levels)
                await asyncio.sleep(1.1)  # past the pool cache, as an order an idle second apart
                first = len(node.timed_calls)
                started = time.monotonic()
                body = {"token_in": "SOL", "token_out": "PUMP", "amount": "0.01", "slippage_bps": 300}
                order_id = (await client.post("/orders", json=body)).json()["order_id"]
                while (order := (await client.get(f"/orders/{order_id}")).json())["status"] not in (
                    "CONFIRMED",
                    "FAILED",
                ):
                    await asyncio.sleep(0.02)
                assert order["status"] == "CONFIRMED", order
                latencies.append((time.monotonic() - started) * 1000)
                per_order.append([call for call in node.timed_calls[first:] if call[0] not in ("getHealth",)])
        measured = per_order[1:]
        for calls in measured[:1]:
            progress(
                "chain: one order's requests: "
                + ", ".join(
                    f"{m} {1000 * (a - calls[0][1]):.0f}–{1000 * (b - calls[0][1]):.0f} ms"
                    for m, a, b in calls
                )
            )
        methods = Counter(call[0] for calls in measured for call in calls)
        trips = sorted(round_trips(calls) for calls in measured)
        listed = ", ".join(f"{method} {count / len(measured):g}" for method, count in methods.most_common())
        return [
            Figure(CHAIN, "RPC requests per order", sum(methods.values()) / len(measured), note=listed),
            Figure(
                CHAIN,
                "RPC round trips on the critical path (min)",
                trips[0],
                note="overlapping requests count once; target ≤ 6",
            ),
            Figure(CHAIN, "RPC round trips on the critical path (median)", trips[len(trips) // 2]),
            Figure(
                CHAIN,
                "market order p50, POST → CONFIRMED",
                percentile(latencies[1:], 50),
                "ms",
                note="50 ms slots; the node lands a transaction the slot after it arrives",
            ),
        ]
    finally:
        engine.stop()


async def _run(workbench: Workbench) -> list[Figure]:
    progress("chain: decoding and quoting the fixture pools, then market orders over JSON-RPC …")
    cluster = start_test_cluster(workbench.directory("chain"), slot_ms=50)
    try:
        return quote_figures(cluster.node) + await order_figures(workbench, cluster.node, cluster.venues_file)
    finally:
        cluster.node.stop()


CHAIN_SECTION = Section(
    name="chain",
    tables=(CHAIN,),
    needs_s=40,
    run=_run,
    infra=True,
    parameters={"chain": {"quote_calls": QUOTE_CALLS, "orders": ORDERS, "slot_ms": 50}},
)
