"""SPL Token and Token-2022 accounts as the venues and wallets need them: mints
(decimals, which program), token accounts (mint, owner, amount) and associated token
account addresses. Layouts: the 82-byte `Mint` and 165-byte `Account` of the SPL Token
program's state.rs, which Token-2022 extends with a type byte and TLV extensions after
byte 165 (`spl_token_2022::extension`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM, TOKEN_2022_PROGRAM})

MINT_LEN = 82
ACCOUNT_LEN = 165


class NotATokenAccount(ValueError):
    """Bytes that are not the account they were read as."""


@dataclass(frozen=True)
class Mint:
    address: Pubkey
    program: Pubkey  # TOKEN_PROGRAM or TOKEN_2022_PROGRAM: the account's owner
    decimals: int
    supply: int
    data: bytes  # whole account, for Token-2022 extensions


@dataclass(frozen=True)
class TokenAccount:
    address: Pubkey
    mint: Pubkey
    owner: Pubkey
    amount: int
    program: Pubkey


def decode_mint(address: Pubkey, program: Pubkey, data: bytes) -> Mint:
    """A mint: supply (u64 at 36), decimals (u8 at 44), initialized (45)."""
    if program not in TOKEN_PROGRAMS:
        raise NotATokenAccount(f"{address} is owned by {program}, not a token program")
    if len(data) < MINT_LEN or not data[45]:
        raise NotATokenAccount(f"{address} is not an initialized mint")
    (supply,) = struct.unpack_from("<Q", data, 36)
    return Mint(address, program, data[44], supply, bytes(data))


def decode_token_account(address: Pubkey, program: Pubkey, data: bytes) -> TokenAccount:
    """A token account: mint (0..32), owner (32..64), amount (u64 at 64)."""
    if program not in TOKEN_PROGRAMS:
        raise NotATokenAccount(f"{address} is owned by {program}, not a token program")
    if len(data) < ACCOUNT_LEN or data[108] == 0:  # state: 0 uninitialized
        raise NotATokenAccount(f"{address} is not an initialized token account")
    (amount,) = struct.unpack_from("<Q", data, 64)
    return TokenAccount(address, Pubkey(data[0:32]), Pubkey(data[32:64]), amount, program)


def associated_token_address(owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM) -> Pubkey:
    """The owner's associated token account for `mint` (seeds: owner, token program, mint)."""
    address, _ = Pubkey.find_program_address(
        [bytes(owner), bytes(program), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM
    )
    return address
