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
import itertools
import struct
from dataclasses import dataclass, replace

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
# Instruction tags: base in (amount_in, minimum_amount_out) and base out (maximum_amount_in,
# amount_out), as u64 LE; then the leg's hop (u8) and its share of the hop (u16 bps).
SWAP_BASE_IN, SWAP_BASE_OUT = 9, 11
LEG_DATA = struct.Struct("<BQQBH")
LEGACY_LEG_DATA = struct.Struct("<BQQ")  # single-hop exact-in transactions of earlier versions


class InvalidTransaction(ValueError):
    pass


@dataclass(frozen=True)
class SwapLeg:
    """One swap instruction. Exact-in: swap `amount_in` (hops after the first: `share_bps`
    of what the hop before paid out), receive at least `min_amount_out`. Exact-out
    (`exact_out`): receive exactly `min_amount_out`, pay at most `amount_in`."""

    dex: str
    amount_in: int
    min_amount_out: int
    token_in: str = ""  # "" in a single-hop transaction: the swap's own pair
    token_out: str = ""
    hop: int = 0
    share_bps: int = 10_000
    exact_out: bool = False


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
    legs = [_with_pair(leg, token_in, token_out) for leg in legs]
    if mint_in == NATIVE_MINT:
        # Native SOL in: move lamports into the wallet's wSOL account and sync its balance.
        wsol = get_associated_token_address(wallet, NATIVE_MINT)
        total_in = sum(leg.amount_in for leg in legs if leg.hop == 0)
        instructions.append(transfer(TransferParams(from_pubkey=wallet, to_pubkey=wsol, lamports=total_in)))
        instructions.append(
            Instruction(TOKEN_PROGRAM, bytes([SYNC_NATIVE]), [AccountMeta(wsol, False, True)])
        )
    for leg in legs:
        if leg.exact_out:
            data = LEG_DATA.pack(SWAP_BASE_OUT, leg.amount_in, leg.min_amount_out, leg.hop, leg.share_bps)
        else:
            data = LEG_DATA.pack(SWAP_BASE_IN, leg.amount_in, leg.min_amount_out, leg.hop, leg.share_bps)
        instructions.append(
            Instruction(
                PROGRAMS[leg.dex],
                data,
                [
                    AccountMeta(
                        pool_address(leg.dex, leg.token_in, leg.token_out), is_signer=False, is_writable=True
                    ),
                    AccountMeta(wallet, is_signer=True, is_writable=True),
                    AccountMeta(_mint(leg.token_in), is_signer=False, is_writable=False),
                    AccountMeta(_mint(leg.token_out), is_signer=False, is_writable=False),
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
            if len(data) == LEGACY_LEG_DATA.size:
                tag, amount_in, min_out = LEGACY_LEG_DATA.unpack(data)
                hop, share = 0, 10_000
            elif len(data) == LEG_DATA.size:
                tag, amount_in, min_out, hop, share = LEG_DATA.unpack(data)
            else:
                raise InvalidTransaction("unknown swap instruction")
            if tag not in (SWAP_BASE_IN, SWAP_BASE_OUT) or len(ix.accounts) < 4:
                raise InvalidTransaction("unknown swap instruction")
            leg_in, leg_out = find_token(str(keys[ix.accounts[2]])), find_token(str(keys[ix.accounts[3]]))
            if leg_in is None or leg_out is None:
                raise InvalidTransaction("unknown mint")
            legs.append(
                SwapLeg(
                    dexes[program],
                    amount_in,
                    min_out,
                    leg_in.symbol,
                    leg_out.symbol,
                    hop,
                    share,
                    exact_out=tag == SWAP_BASE_OUT,
                )
            )
        elif program == MEMO_PROGRAM:
            memo = data.decode()
    if not legs or memo is None:
        raise InvalidTransaction("a swap needs legs and an idempotency memo")
    _check_chained(legs)
    return DecodedSwap(
        signature=str(tx.signatures[0]),
        signer=str(keys[0]),
        blockhash=str(message.recent_blockhash),
        idempotency_key=memo,
        token_in=legs[0].token_in,
        token_out=legs[-1].token_out,
        legs=tuple(legs),
        compute_unit_limit=limit,
        micro_lamports_per_cu=price,
        tip_lamports=tip,
    )


def _with_pair(leg: SwapLeg, token_in: str, token_out: str) -> SwapLeg:
    """A single-hop leg names the swap's pair when it names none."""
    return leg if leg.token_in else replace(leg, token_in=token_in, token_out=token_out)


def _check_chained(legs: list[SwapLeg]) -> None:
    """Hops in order, each one pair, each paying into the next; one swap mode."""
    hops = sorted({leg.hop for leg in legs})
    if hops != list(range(len(hops))) or [leg.hop for leg in legs] != sorted(leg.hop for leg in legs):
        raise InvalidTransaction("legs must come hop by hop")
    pairs = [{(leg.token_in, leg.token_out) for leg in legs if leg.hop == hop} for hop in hops]
    if any(len(pair) != 1 for pair in pairs) or len({leg.exact_out for leg in legs}) != 1:
        raise InvalidTransaction("each hop trades one pair, all legs in one mode")
    chain = [next(iter(pair)) for pair in pairs]
    if any(a[1] != b[0] for a, b in itertools.pairwise(chain)) or len({a for a, _ in chain}) != len(chain):
        raise InvalidTransaction("each hop must pay into the next, through distinct tokens")


def _mint(symbol: str) -> Pubkey:
    token = find_token(symbol)
    if token is None:
        raise InvalidTransaction(f"unknown token {symbol}")
    return Pubkey.from_string(token.mint)
