"""Swap transactions are real Solana transactions: signed, decodable, tamper-evident."""

from __future__ import annotations

from dataclasses import replace

import pytest
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

from market.transactions import (
    TIP_ACCOUNT,
    ComputeBudget,
    InvalidTransaction,
    SwapLeg,
    build_swap,
    decode_swap,
)

OWNER = Keypair()

LEGS = [SwapLeg("raydium", 300_000_000, 44_000_000), SwapLeg("meteora", 700_000_000, 104_000_000)]
BUDGET = ComputeBudget(compute_unit_limit=150_000, micro_lamports_per_cu=12_345)


def test_the_tx_hash_is_the_signature_and_the_chain_reads_back_the_swap() -> None:
    signature, raw = build_swap(
        signer=OWNER,
        idempotency_key="ord_X:swap",
        token_in="SOL",
        token_out="USDC",
        legs=LEGS,
        slot=42,
        budget=BUDGET,
    )
    tx = VersionedTransaction.from_bytes(raw)
    assert str(tx.signatures[0]) == signature and len(signature) in range(86, 89)
    decoded = decode_swap(raw)
    assert decoded.signature == signature
    assert decoded.signer == str(OWNER.pubkey())  # the owner's wallet signed it
    assert (decoded.token_in, decoded.token_out, decoded.idempotency_key) == ("SOL", "USDC", "ord_X:swap")
    assert decoded.legs == tuple(replace(leg, token_in="SOL", token_out="USDC") for leg in LEGS)
    # What it asks of the runtime and pays, as the compute-budget program reads it.
    assert (decoded.compute_unit_limit, decoded.micro_lamports_per_cu, decoded.tip_lamports) == (
        150_000,
        12_345,
        0,
    )


def test_a_tip_is_a_transfer_to_the_block_engine_and_reads_back() -> None:
    tipped = ComputeBudget(compute_unit_limit=90_000, micro_lamports_per_cu=0, tip_lamports=25_000)
    _, raw = build_swap(
        signer=OWNER, idempotency_key="k", token_in="SOL", token_out="USDC", legs=LEGS, slot=3, budget=tipped
    )
    message = VersionedTransaction.from_bytes(raw).message
    assert TIP_ACCOUNT in message.account_keys
    decoded = decode_swap(raw)
    assert (decoded.tip_lamports, decoded.compute_unit_limit, decoded.micro_lamports_per_cu) == (
        25_000,
        90_000,
        0,
    )
    # The SOL wrapped for the swap is no tip: only the transfer to the tip account is.
    assert decoded.legs == tuple(replace(leg, token_in="SOL", token_out="USDC") for leg in LEGS)


def test_a_tampered_transaction_is_refused() -> None:
    _, raw = build_swap(
        signer=OWNER,
        idempotency_key="ord_X:swap",
        token_in="SOL",
        token_out="USDC",
        legs=LEGS,
        slot=42,
        budget=BUDGET,
    )
    tampered = bytearray(raw)
    tampered[-30] ^= 0xFF  # somewhere in the instruction data
    with pytest.raises(InvalidTransaction):
        decode_swap(bytes(tampered))


def test_the_same_swap_in_another_slot_is_another_transaction() -> None:
    first, _ = build_swap(
        signer=OWNER, idempotency_key="k", token_in="SOL", token_out="USDC", legs=LEGS, slot=1, budget=BUDGET
    )
    second, _ = build_swap(
        signer=OWNER, idempotency_key="k", token_in="SOL", token_out="USDC", legs=LEGS, slot=2, budget=BUDGET
    )
    assert first != second


def test_native_sol_is_wrapped_going_in_and_unwrapped_coming_out() -> None:
    _, sol_in = build_swap(
        signer=OWNER, idempotency_key="k", token_in="SOL", token_out="USDC", legs=LEGS, slot=1, budget=BUDGET
    )
    _, sol_out = build_swap(
        signer=OWNER, idempotency_key="k", token_in="USDC", token_out="SOL", legs=LEGS, slot=1, budget=BUDGET
    )
    programs = [
        [str(msg.account_keys[ix.program_id_index]) for ix in msg.instructions]
        for msg in (VersionedTransaction.from_bytes(raw).message for raw in (sol_in, sol_out))
    ]
    system, token = "11111111111111111111111111111111", "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
    assert programs[0].index(system) < programs[0].index(token) < len(programs[0]) - 3  # wrap before swaps
    assert programs[1][-2] == token and system not in programs[1]  # close wSOL after swaps
    assert decode_swap(sol_out).token_out == "SOL"


def test_a_multi_hop_route_is_one_transaction_with_its_legs_in_order() -> None:
    hops = [
        SwapLeg("meteora", 10**14, 0, "BONK", "SOL", hop=0, share_bps=8_000),
        SwapLeg("raydium", 25 * 10**12, 0, "BONK", "SOL", hop=0, share_bps=2_000),
        SwapLeg("meteora", 15 * 10**9, 2_000_000_000, "SOL", "USDC", hop=1, share_bps=10_000),
    ]
    _, raw = build_swap(
        signer=OWNER, idempotency_key="k", token_in="BONK", token_out="USDC", legs=hops, slot=1, budget=BUDGET
    )
    decoded = decode_swap(raw)
    assert decoded.legs == tuple(hops)
    assert (decoded.token_in, decoded.token_out) == ("BONK", "USDC")
    exact_out = [replace(leg, exact_out=True) for leg in hops]
    _, raw = build_swap(
        signer=OWNER,
        idempotency_key="k",
        token_in="BONK",
        token_out="USDC",
        legs=exact_out,
        slot=1,
        budget=BUDGET,
    )
    assert all(leg.exact_out for leg in decode_swap(raw).legs)


def test_legs_that_do_not_chain_are_refused() -> None:
    broken = [
        SwapLeg("meteora", 10**14, 0, "BONK", "SOL", hop=0),
        SwapLeg("meteora", 10**9, 1, "USDT", "USDC", hop=1),  # SOL does not pay into USDT
    ]
    _, raw = build_swap(
        signer=OWNER,
        idempotency_key="k",
        token_in="BONK",
        token_out="USDC",
        legs=broken,
        slot=1,
        budget=BUDGET,
    )
    with pytest.raises(InvalidTransaction):
        decode_swap(raw)
