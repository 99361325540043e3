"""Accounts as the node holds them, rent, and the SPL Token account layout the node's
token programs read and write (spl-token `state.rs` `Account`: mint 0..32, owner 32..64,
amount 64..72, delegate 72..108, state 108, is_native 109..121, delegated amount
121..129, close authority 129..165; Token-2022 appends an account-type byte at 165 and
TLV extensions after it, `spl_token_2022::extension`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from solders.pubkey import Pubkey

from onchain.spl import (
    ACCOUNT_LEN,
    MINT_LEN,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    TOKEN_PROGRAMS,
)

SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")

# Rent: 3480 lamports per byte-year, exempt at two years, 128 bytes of account overhead.
RENT_LAMPORTS_PER_BYTE = 3480 * 2
ACCOUNT_STORAGE_OVERHEAD = 128

# Token-2022 extension types (`ExtensionType` in spl_token_2022::extension).
TRANSFER_FEE_CONFIG = 1
TRANSFER_FEE_AMOUNT = 2
IMMUTABLE_OWNER = 7
ACCOUNT_TYPE_OFFSET = 165
EXTENSIONS_OFFSET = 166
STATE_INITIALIZED = 1


def rent_exempt_minimum(size: int) -> int:
    return (size + ACCOUNT_STORAGE_OVERHEAD) * RENT_LAMPORTS_PER_BYTE


@dataclass(frozen=True)
class Account:
    lamports: int
    owner: Pubkey
    data: bytes = b""
    executable: bool = False

    def with_lamports(self, lamports: int) -> Account:
        return replace(self, lamports=lamports)

    def with_data(self, data: bytes) -> Account:
        return replace(self, data=data)


@dataclass(frozen=True)
class TokenState:
    """The fields of a token account the node's programs use."""

    mint: Pubkey
    owner: Pubkey
    amount: int
    native_reserve: int | None  # the rent reserve of a wrapped-SOL account, else None


def is_token_account(account: Account | None) -> bool:
    return (
        account is not None
        and account.owner in TOKEN_PROGRAMS
        and len(account.data) >= ACCOUNT_LEN
        and account.data[108] != 0
        and (len(account.data) == ACCOUNT_LEN or account.data[ACCOUNT_TYPE_OFFSET] == 2)
    )


def read_token(data: bytes) -> TokenState:
    (amount,) = struct.unpack_from("<Q", data, 64)
    (native_tag, native_reserve) = struct.unpack_from("<IQ", data, 109)
    return TokenState(Pubkey(data[0:32]), Pubkey(data[32:64]), amount, native_reserve if native_tag else None)


def with_amount(data: bytes, amount: int) -> bytes:
    return data[:64] + struct.pack("<Q", amount) + data[72:]


def token_account_data(
    mint: Pubkey, owner: Pubkey, amount: int, native_reserve: int | None, extensions: bytes = b""
) -> bytes:
    """A fresh initialized token account; `extensions` (Token-2022 TLV) adds the type byte."""
    data = (
        bytes(mint)
        + bytes(owner)
        + struct.pack("<Q", amount)
        + bytes(36)  # no delegate
        + bytes([STATE_INITIALIZED])
        + (struct.pack("<IQ", 1, native_reserve) if native_reserve is not None else bytes(12))
        + bytes(8)  # delegated amount
        + bytes(36)  # no close authority
    )
    assert len(data) == ACCOUNT_LEN
    return data + (bytes([2]) + extensions if extensions else b"")


def extensions(data: bytes, base_len: int) -> dict[int, tuple[int, int]]:
    """Token-2022 TLV entries after the account-type byte: type -> (offset, length)."""
    found: dict[int, tuple[int, int]] = {}
    if len(data) <= base_len:
        return found
    offset = EXTENSIONS_OFFSET
    while offset + 4 <= len(data):
        kind, length = struct.unpack_from("<HH", data, offset)
        if kind == 0:
            break
        found[kind] = (offset + 4, length)
        offset += 4 + length
    return found


def mint_decimals(mint: Account) -> int:
    return mint.data[44]


def transfer_fee(mint: Account, amount: int, epoch: int) -> int:
    """What Token-2022 withholds from a transfer of `amount` of this mint
    (`TransferFeeConfig`: the newer fee applies from its epoch; ceil(amount × bps / 10⁴)
    capped at the maximum; spl_token_2022::extension::transfer_fee::TransferFee::calculate_fee)."""
    if mint.owner != TOKEN_2022_PROGRAM:
        return 0
    entry = extensions(mint.data, MINT_LEN).get(TRANSFER_FEE_CONFIG)
    if entry is None:
        return 0
    offset, _ = entry
    older = struct.unpack_from("<QQH", mint.data, offset + 72)
    newer = struct.unpack_from("<QQH", mint.data, offset + 90)
    _, maximum, bps = newer if epoch >= newer[0] else older
    if bps == 0 or amount == 0:
        return 0
    return int(min(-(-amount * bps // 10_000), maximum))


def withhold(data: bytes, fee: int) -> bytes:
    """Add a transfer fee to the destination's `TransferFeeAmount.withheld_amount`."""
    entry = extensions(data, ACCOUNT_LEN).get(TRANSFER_FEE_AMOUNT)
    if entry is None or fee == 0:
        return data
    offset, _ = entry
    (withheld,) = struct.unpack_from("<Q", data, offset)
    return data[:offset] + struct.pack("<Q", withheld + fee) + data[offset + 8 :]


def withheld_fees(data: bytes) -> int:
    entry = extensions(data, ACCOUNT_LEN).get(TRANSFER_FEE_AMOUNT)
    if entry is None:
        return 0
    (withheld,) = struct.unpack_from("<Q", data, entry[0])
    return int(withheld)


def associated_account_extensions(mint: Account) -> bytes:
    """The extensions the Associated Token Account program gives a new Token-2022 account:
    always ImmutableOwner, plus TransferFeeAmount when the mint charges transfer fees."""
    if mint.owner != TOKEN_2022_PROGRAM:
        return b""
    tlv = struct.pack("<HH", IMMUTABLE_OWNER, 0)
    if TRANSFER_FEE_CONFIG in extensions(mint.data, MINT_LEN):
        tlv += struct.pack("<HHQ", TRANSFER_FEE_AMOUNT, 8, 0)
    return tlv


def native_account(owner: Pubkey, lamports: int) -> Account:
    """A wrapped-SOL token account holding `lamports` above its rent reserve."""
    reserve = rent_exempt_minimum(ACCOUNT_LEN)
    data = token_account_data(NATIVE_MINT, owner, lamports, reserve)
    return Account(reserve + lamports, TOKEN_PROGRAM, data)
