"""Real Solana transactions for the simulated venues, built and checked with `solders`.

A swap transaction is a v0 message: compute-budget instructions (SetComputeUnitLimit and
SetComputeUnitPrice), native SOL wrapped into wSOL when it is the input (and unwrapped when
it is the output), one swap instruction per route leg (to the venue's real program id), a
tip to the block engine's tip account when the order pays one, and a memo carrying the
idempotency key; it names a recent blockhash and is signed by the owner's wallet keypair. Its first
signature, base58, is the `tx_hash`. The simulated chain decodes the same bytes, checks
the signature and the blockhash, and executes the instructions.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from market.tokens import find_token

PROGRAMS = {
    "raydium": Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"),
    "meteora": Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo"),
}
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
# One of Jito's tip accounts: a transfer to it is the block engine's tip.
TIP_ACCOUNT = Pubkey.from_string("96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5")
SET_COMPUTE_UNIT_LIMIT, SET_COMPUTE_UNIT_PRICE = 2, 3  # compute-budget instruction tags
SYSTEM_TRANSFER = 2
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
SYNC_NATIVE, CLOSE_ACCOUNT = 17, 9  # SPL Token instruction tags
SWAP_BASE_IN = 9  # instruction tag, then amount_in and minimum_amount_out as u64 LE


class InvalidTransaction(ValueError):
    pass


@dataclass(frozen=True)
class SwapLeg:
    dex: str
    amount_in: int
    min_amount_out: int


@dataclass(frozen=True)
class DecodedSwap:
    signature: str
    signer: str
    blockhash: str
    idempotency_key: str
    token_in: str
    token_out: str
    legs: tuple[SwapLeg, ...]
    compute_unit_limit: int
    micro_lamports_per_cu: int
    tip_lamports: int


@dataclass(frozen=True)
class ComputeBudget:
    """What a transaction asks of the runtime and pays for it."""

    compute_unit_limit: int
    micro_lamports_per_cu: int
    tip_lamports: int = 0


def blockhash_for_slot(slot: int) -> Hash:
    """The simulated chain's blockhash of a slot (deterministic, so every process agrees)."""
    return Hash(hashlib.sha256(f"order-engine slot {slot}".encode()).digest())


def pool_address(dex: str, token_a: str, token_b: str) -> Pubkey:
    pair = "/".join(sorted((token_a, token_b)))
    return Pubkey(hashlib.sha256(f"{dex}:{pair}".encode()).digest())


def build_swap(
    *,
    signer: Keypair,
    idempotency_key: str,
    token_in: str,
    token_out: str,
    legs: list[SwapLeg],
    slot: int,
    budget: ComputeBudget,
) -> tuple[str, bytes]:
    """A swap transaction signed by the owner's `signer`; returns (signature, serialized bytes)."""
    mint_in, mint_out = _mint(token_in), _mint(token_out)
    wallet = signer.pubkey()
    instructions = [
        set_compute_unit_limit(budget.compute_unit_limit),
        set_compute_unit_price(budget.micro_lamports_per_cu),
    ]
    if mint_in == NATIVE_MINT:
        # Native SOL in: move lamports into the wallet's wSOL account and sync its balance.
        wsol = get_associated_token_address(wallet, NATIVE_MINT)
        total_in = sum(leg.amount_in for leg in legs)
        instructions.append(transfer(TransferParams(from_pubkey=wallet, to_pubkey=wsol, lamports=total_in)))
        instructions.append(
            Instruction(TOKEN_PROGRAM, bytes([SYNC_NATIVE]), [AccountMeta(wsol, False, True)])
        )
    for leg in legs:
        instructions.append(
            Instruction(
                PROGRAMS[leg.dex],
                struct.pack("<BQQ", SWAP_BASE_IN, leg.amount_in, leg.min_amount_out),
                [
                    AccountMeta(
                        pool_address(leg.dex, token_in, token_out), is_signer=False, is_writable=True
                    ),
                    AccountMeta(wallet, is_signer=True, is_writable=True),
                    AccountMeta(mint_in, is_signer=False, is_writable=False),
                    AccountMeta(mint_out, is_signer=False, is_writable=False),
                ],
            )
        )
    if mint_out == NATIVE_MINT:
        # Native SOL out: close the wSOL account, which returns its lamports to the wallet.
        wsol = get_associated_token_address(wallet, NATIVE_MINT)
        accounts = [
            AccountMeta(wsol, False, True),
            AccountMeta(wallet, False, True),
            AccountMeta(wallet, True, False),
        ]
        instructions.append(Instruction(TOKEN_PROGRAM, bytes([CLOSE_ACCOUNT]), accounts))
    if budget.tip_lamports > 0:
        instructions.append(
            transfer(TransferParams(from_pubkey=wallet, to_pubkey=TIP_ACCOUNT, lamports=budget.tip_lamports))
        )
    instructions.append(
        Instruction(MEMO_PROGRAM, idempotency_key.encode(), [AccountMeta(wallet, True, False)])
    )
    message = MessageV0.try_compile(wallet, instructions, [], blockhash_for_slot(slot))
    tx = VersionedTransaction(message, [signer])
    return str(tx.signatures[0]), bytes(tx)


def decode_swap(raw: bytes) -> DecodedSwap:
    """Parse and verify a swap transaction as the chain does; InvalidTransaction if not."""
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except Exception as error:
        raise InvalidTransaction(f"not a transaction: {error}") from None
    message = tx.message
    keys = list(message.account_keys)
    if not tx.signatures or not tx.signatures[0].verify(keys[0], to_bytes_versioned(message)):
        raise InvalidTransaction("signature verification failed")
    dexes = {program: dex for dex, program in PROGRAMS.items()}
    legs: list[SwapLeg] = []
    memo = None
    mints: set[tuple[str, str]] = set()
    limit, price, tip = 200_000, 0, 0  # the runtime's defaults when a transaction names none
    for ix in message.instructions:
        program = keys[ix.program_id_index]
        data = bytes(ix.data)
        if program == COMPUTE_BUDGET_PROGRAM and data[:1] == bytes([SET_COMPUTE_UNIT_LIMIT]):
            (limit,) = struct.unpack("<I", data[1:5])
        elif program == COMPUTE_BUDGET_PROGRAM and data[:1] == bytes([SET_COMPUTE_UNIT_PRICE]):
            (price,) = struct.unpack("<Q", data[1:9])
        elif program == SYSTEM_PROGRAM and len(data) == 12 and keys[ix.accounts[1]] == TIP_ACCOUNT:
            tag, lamports = struct.unpack("<IQ", data)
            if tag == SYSTEM_TRANSFER:
                tip += lamports
        elif program in dexes:
            tag, amount_in, min_out = struct.unpack("<BQQ", data)
            if tag != SWAP_BASE_IN or len(ix.accounts) < 4:
                raise InvalidTransaction("unknown swap instruction")
            mints.add((str(keys[ix.accounts[2]]), str(keys[ix.accounts[3]])))
            legs.append(SwapLeg(dexes[program], amount_in, min_out))
        elif program == MEMO_PROGRAM:
            memo = data.decode()
    if not legs or memo is None or len(mints) != 1:
        raise InvalidTransaction("a swap needs legs of one pair and an idempotency memo")
    (mint_in, mint_out) = mints.pop()
    token_in, token_out = find_token(mint_in), find_token(mint_out)
    if token_in is None or token_out is None:
        raise InvalidTransaction("unknown mint")
    return DecodedSwap(
        signature=str(tx.signatures[0]),
        signer=str(keys[0]),
        blockhash=str(message.recent_blockhash),
        idempotency_key=memo,
        token_in=token_in.symbol,
        token_out=token_out.symbol,
        legs=tuple(legs),
        compute_unit_limit=limit,
        micro_lamports_per_cu=price,
        tip_lamports=tip,
    )


def _mint(symbol: str) -> Pubkey:
    token = find_token(symbol)
    if token is None:
        raise InvalidTransaction(f"unknown token {symbol}")
    return Pubkey.from_string(token.mint)
