"""Optional tier: the engine's whole transactions (compute budget, the associated token
accounts, wrapped SOL, DLMM swap2 / swap_exact_out2) run by the REAL Meteora DLMM program
over the mainnet fixture pool EtAd… (PUMP/SOL), through our JSON-RPC node with its
LiteSVM runtime (tests/solana_node/litesvm_runtime.py: LiteSVM's own System, Compute
Budget, SPL Token, Token-2022 and ATA programs). Skipped unless VENUE_PROGRAMS_DIR holds
the DLMM binary (`solana program dump LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo
<dir>/LBUZ….so`; never committed).

What a trader relies on: the order CONFIRMS, the wallet moves by exactly what the order
reports (amounts, fees, rent), and what it got is what the route it sent predicted, to
the base unit."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from solders.signature import Signature

from devstack import InfraUrls
from onchain.meteora_dlmm import (
    PROGRAM_ID,
    BinArray,
    NotADlmmAccount,
    decode_bin_array,
    decode_lb_pair,
    dlmm_book,
    quote_exact_in,
    quote_exact_out,
    transfer_fees,
)
from onchain.spl import NATIVE_MINT, TOKEN_PROGRAM, decode_mint
from tests.integration.test_real_chain import (
    ChainEngine,
    engine_on,
    failures_of,
    final,
    on_chain,
    place,
    status_reached,
)
from tests.solana_node.market_setup import DLMM_POOL, PUMP_MINT, start_test_cluster
from tests.solana_node.node import SolanaNode
from tests.solana_node.state import LandedTransaction

SOL_UNITS, PUMP_UNITS = 10**9, 10**6  # base units per token (PUMP has 6 decimals)


def dlmm_binary() -> Path | None:
    folder = os.environ.get("VENUE_PROGRAMS_DIR")
    if not folder:
        return None
    for name in (f"{PROGRAM_ID}.so", "lb_clmm.so", "meteora_dlmm.so"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


pytestmark = pytest.mark.skipif(dlmm_binary() is None, reason="VENUE_PROGRAMS_DIR has no DLMM program")


@pytest.fixture(scope="module")
async def program_engine(
    infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ChainEngine]:
    directory = tmp_path_factory.mktemp("chain-programs")
    cluster = start_test_cluster(directory, slot_ms=50, dlmm_binary=dlmm_binary())
    async with engine_on(infra, directory, cluster) as engine:
        yield engine


def units(amount: str, per_token: int) -> int:
    value = Decimal(amount) * per_token
    assert value == value.to_integral_value(), amount
    return int(value)


async def confirmed_once(engine: ChainEngine, order: dict[str, Any]) -> LandedTransaction:
    """The one landed transaction of a CONFIRMED order (it succeeded on the program)."""
    sent = await engine.sent(order["order_id"])
    landed = [engine.cluster.node.landed(Signature.from_string(s.signature)) for s in sent]
    succeeded = [tx for tx in landed if tx is not None and tx.execution.error is None]
    assert [str(tx.signature) for tx in succeeded] == [order["tx_hash"]], [
        (tx.signature, tx.execution.error, tx.execution.logs[-6:]) for tx in landed if tx is not None
    ]
    # run by the real program: its CPIs into SPL Token appear at depth 2 (the emulation logs none)
    assert f"Program {TOKEN_PROGRAM} invoke [2]" in succeeded[0].execution.logs, succeeded[0].execution.logs
    return succeeded[0]


@dataclass(frozen=True)
class PoolBefore:
    """The DLMM pair and its bin arrays as they were before an order."""

    pair_data: bytes
    bin_arrays: tuple[BinArray, ...]

    @classmethod
    def read(cls, node: SolanaNode) -> PoolBefore:
        with node.state.lock:
            accounts = dict(node.state.accounts)
        arrays = []
        for address, account in accounts.items():
            if account.owner != PROGRAM_ID:
                continue
            try:
                array = decode_bin_array(address, account.data)
            except NotADlmmAccount:
                continue
            if array.lb_pair == DLMM_POOL:
                arrays.append(array)
        return cls(accounts[DLMM_POOL].data, tuple(arrays))

    def quote(
        self, node: SolanaNode, landed: LandedTransaction, amount: int, swap_for_y: bool, exact_out: bool
    ) -> int:
        """Our quote (onchain/meteora_dlmm.py) at the landed block's clock: the amount out
        of an exact in, the amount in of an exact out."""
        pair = decode_lb_pair(DLMM_POOL, self.pair_data)
        mints = [node.account(mint) for mint in (PUMP_MINT, NATIVE_MINT)]  # x, y
        mint_x, mint_y = (
            decode_mint(key, TOKEN_PROGRAM, a.data)
            for key, a in zip((PUMP_MINT, NATIVE_MINT), mints, strict=True)
            if a is not None
        )
        epoch = landed.slot // 432_000
        fees = transfer_fees(pair, mint_x, mint_y, swap_for_y, epoch)
        book = dlmm_book(pair, self.bin_arrays)
        if exact_out:
            quoted = quote_exact_out(book, amount, swap_for_y, landed.block_time, *fees)
            assert quoted.complete
            return quoted.amount_in
        return quote_exact_in(book, amount, swap_for_y, landed.block_time, *fees).amount_out


def wallet_fees(order: dict[str, Any]) -> tuple[int, int]:
    """(fees paid, rent put into new accounts) in lamports, as the order reports them."""
    fees = order["fees"]
    return fees["network_lamports"] + fees["priority_lamports"] + fees["tip_lamports"], fees["rent_lamports"]


async def test_an_exact_out_sell_the_program_refuses_fails_cleanly_without_sending(
    program_engine: ChainEngine,
) -> None:
    """First in the module: the pool as the mainnet fixture has it. The real program fails
    swap_exact_out2 with Custom 6085 (UndeterminedError) on reaching the active bin's
    processed limit orders, which our quote (and the emulation) fill; the later orders move
    the active bin away, and then the same order lands. What the engine does with such a
    refusal: each attempt's simulation refuses it (nothing sent, nothing paid), and after
    its attempts the order is FAILED with the reason, the wallet untouched."""
    client, owner = await program_engine.trader()
    program_engine.cluster.node.mint_tokens_to(owner.pubkey(), PUMP_MINT, 1_000 * PUMP_UNITS)
    async with client:
        before = on_chain(program_engine.cluster, owner)
        order_id = await place(client, token_in="PUMP", token_out="SOL", swap_mode="exact_out", amount="0.03")
        order = await final(client, order_id)
        assert order["status"] == "FAILED", order
        failures = await failures_of(client, order_id)
        refused = [f for f in failures if f["stage"] == "simulation"]
        assert refused and all(f["code"] == "INSUFFICIENT_LIQUIDITY" for f in refused), failures
        assert "Custom(6085)" in refused[0]["reason"]
        assert all(f["fee_lamports"] == 0 for f in failures)
        assert on_chain(program_engine.cluster, owner) == before


async def test_buying_pump_with_sol_lands_on_the_program_exactly_as_quoted(
    program_engine: ChainEngine,
) -> None:
    client, owner = await program_engine.trader()
    async with client:
        before = on_chain(program_engine.cluster, owner)
        pool = PoolBefore.read(program_engine.cluster.node)
        order_id = await place(client, amount="0.05")
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", (order, await failures_of(client, order_id))
        landed = await confirmed_once(program_engine, order)
        after = on_chain(program_engine.cluster, owner)
        paid, rent = wallet_fees(order)
        assert rent > 0  # the PUMP account was made for it
        assert before["SOL"] - after["SOL"] == units(order["amount_in"], SOL_UNITS) + paid + rent
        received = after["PUMP"] - before["PUMP"]
        assert received == units(order["amount_out"], PUMP_UNITS) > 0
        # the real program paid exactly what the route sent predicted
        assert units(order["expected_amount_out"], PUMP_UNITS) == received, order
        assert sum(units(leg["amount_out"], PUMP_UNITS) for leg in order["route"]) == received, order
        node = program_engine.cluster.node
        assert pool.quote(node, landed, 5 * 10**7, swap_for_y=False, exact_out=False) == received


async def test_selling_pump_for_sol_lands_on_the_program_exactly_as_quoted(
    program_engine: ChainEngine,
) -> None:
    client, owner = await program_engine.trader()
    # about 0.05 SOL worth of PUMP, in whole base units
    selling = int(Decimal("0.05") / program_engine.cluster.dlmm_price * PUMP_UNITS)
    program_engine.cluster.node.mint_tokens_to(owner.pubkey(), PUMP_MINT, selling)
    async with client:
        before = on_chain(program_engine.cluster, owner)
        pool = PoolBefore.read(program_engine.cluster.node)
        amount = str(Decimal(selling) / PUMP_UNITS)
        order_id = await place(client, token_in="PUMP", token_out="SOL", amount=amount)
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", (order, await failures_of(client, order_id))
        landed = await confirmed_once(program_engine, order)
        after = on_chain(program_engine.cluster, owner)
        paid, rent = wallet_fees(order)
        assert before["PUMP"] - after["PUMP"] == units(order["amount_in"], PUMP_UNITS) == selling
        received = units(order["amount_out"], SOL_UNITS)
        assert received > 0
        assert after["SOL"] - before["SOL"] == received - paid - rent, (before, after, order["fees"])
        assert units(order["expected_amount_out"], SOL_UNITS) == received, order
        node = program_engine.cluster.node
        assert pool.quote(node, landed, selling, swap_for_y=True, exact_out=False) == received


async def test_an_exact_out_buy_gets_exactly_the_amount_asked_for_what_was_quoted(
    program_engine: ChainEngine,
) -> None:
    client, owner = await program_engine.trader()
    wanted = int(Decimal("0.03") / program_engine.cluster.dlmm_price * PUMP_UNITS)
    async with client:
        before = on_chain(program_engine.cluster, owner)
        pool = PoolBefore.read(program_engine.cluster.node)
        order_id = await place(client, swap_mode="exact_out", amount=str(Decimal(wanted) / PUMP_UNITS))
        order = await final(client, order_id)
        assert order["status"] == "CONFIRMED", (order, await failures_of(client, order_id))
        landed = await confirmed_once(program_engine, order)
        after = on_chain(program_engine.cluster, owner)
        paid, rent = wallet_fees(order)
        assert after["PUMP"] - before["PUMP"] == units(order["amount_out"], PUMP_UNITS) == wanted
        spent = units(order["amount_in"], SOL_UNITS)
        assert before["SOL"] - after["SOL"] == spent + paid + rent
        assert spent <= units(order["max_amount_in"], SOL_UNITS)
        # the program took exactly what our quote says for the pool and the landed clock
        node = program_engine.cluster.node
        assert pool.quote(node, landed, wanted, swap_for_y=False, exact_out=True) == spent


async def test_a_swap_the_program_refuses_on_slippage_pays_its_fee_and_the_order_requotes(
    program_engine: ChainEngine,
) -> None:
    """Another trader's larger buy lands first in the same block: the program refuses ours
    with its slippage error (6003 ExceededAmountSlippageTolerance), which the engine reads
    as SLIPPAGE_EXCEEDED on the chain, pays the fee for, and trades again at the new price."""
    node = program_engine.cluster.node
    first, _ = await program_engine.trader(sol=50 * SOL_UNITS)
    ours, _ = await program_engine.trader()
    async with first, ours:
        node.hold_landing()
        try:
            ahead = await place(first, amount="2")
            await status_reached(first, ahead, "SUBMITTED")
            order_id = await place(ours, amount="0.05", slippage_bps=10)
            await status_reached(ours, order_id, "SUBMITTED")
        finally:
            node.release_landing()
        assert (await final(first, ahead))["status"] == "CONFIRMED"
        order = await final(ours, order_id)
        assert order["status"] == "CONFIRMED", (order, await failures_of(ours, order_id))
        failures = await failures_of(ours, order_id)
        on_chain_failures = [f for f in failures if f["stage"] == "chain"]
        assert [f["code"] for f in on_chain_failures] == ["SLIPPAGE_EXCEEDED"], failures
        assert on_chain_failures[0]["fee_lamports"] > 0
        sent = await program_engine.sent(order_id)
        landed = [node.landed(Signature.from_string(s.signature)) for s in sent]
        errors = [tx.execution.error for tx in landed if tx is not None]
        assert errors.count(None) == 1 and len(errors) == 2, errors
        failed = next(tx for tx in landed if tx is not None and tx.execution.error is not None)
        message = failed.transaction.message
        swap_index = next(
            index
            for index, instruction in enumerate(message.instructions)
            if message.account_keys[instruction.program_id_index] == PROGRAM_ID
        )
        assert failed.execution.error == {"InstructionError": [swap_index, {"Custom": 6003}]}
