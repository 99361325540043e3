"""Swap transactions are real Solana transactions: signed, decodable, tamper-evident."""

from __future__ import annotations

import pytest
from solders.transaction import VersionedTransaction

from market.transactions import WALLET, InvalidTransaction, SwapLeg, build_swap, decode_swap

LEGS = [SwapLeg("raydium", 300_000_000, 44_000_000), SwapLeg("meteora", 700_000_000, 104_000_000)]


def test_the_tx_hash_is_the_signature_and_the_chain_reads_back_the_swap() -> None:
    signature, raw = build_swap(
        idempotency_key="ord_X:swap", token_in="SOL", token_out="USDC", legs=LEGS, slot=42
    )
    tx = VersionedTransaction.from_bytes(raw)
    assert str(tx.signatures[0]) == signature and len(signature) in range(86, 89)
    decoded = decode_swap(raw)
    assert decoded.signature == signature
    assert decoded.signer == str(WALLET.pubkey())
    assert (decoded.token_in, decoded.token_out, decoded.idempotency_key) == ("SOL", "USDC", "ord_X:swap")
    assert decoded.legs == tuple(LEGS)


def test_a_tampered_transaction_is_refused() -> None:
    _, raw = build_swap(idempotency_key="ord_X:swap", token_in="SOL", token_out="USDC", legs=LEGS, slot=42)
    tampered = bytearray(raw)
    tampered[-30] ^= 0xFF  # somewhere in the instruction data
    with pytest.raises(InvalidTransaction):
        decode_swap(bytes(tampered))


def test_the_same_swap_in_another_slot_is_another_transaction() -> None:
    first, _ = build_swap(idempotency_key="k", token_in="SOL", token_out="USDC", legs=LEGS, slot=1)
    second, _ = build_swap(idempotency_key="k", token_in="SOL", token_out="USDC", legs=LEGS, slot=2)
    assert first != second
