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


# Token-2022 mint extensions (spl_token_2022::extension::ExtensionType): a mint's TLV
# entries start at byte 166, after the account-type byte (1 = mint) at 165; each is a u16
# type, a u16 length and the value.
ACCOUNT_TYPE_OFFSET = ACCOUNT_LEN
EXTENSIONS_OFFSET = ACCOUNT_LEN + 1
TRANSFER_FEE_CONFIG = 1
DEFAULT_ACCOUNT_STATE = 6
NON_TRANSFERABLE = 9
TRANSFER_HOOK = 14
PAUSABLE = 26
ONE_IN_BASIS_POINTS = 10_000
# Extensions that change nothing about how much a transfer moves nor whether it may:
# authorities, metadata and pointers, interest/scaled UI amounts (the raw amount is what
# moves), permanent delegate, confidential transfers alongside public ones.
_HARMLESS_EXTENSIONS = frozenset(
    {2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27}
)
_EXTENSION_NAMES = {
    DEFAULT_ACCOUNT_STATE: "default account state frozen",
    NON_TRANSFERABLE: "non-transferable",
    TRANSFER_HOOK: "transfer hook",
    PAUSABLE: "paused",
}


@dataclass(frozen=True)
class TransferFee:
    """A Token-2022 transfer fee for one epoch: basis points of the amount moved, rounded
    up, capped at `maximum_fee` (spl-token-2022 extension/transfer_fee/mod.rs,
    `TransferFee::calculate_fee`). The recipient gets the amount less the fee."""

    epoch: int
    maximum_fee: int
    basis_points: int

    def fee_on(self, amount: int) -> int:
        """The fee a transfer of `amount` pays (the recipient gets amount − fee)."""
        if self.basis_points == 0 or amount == 0:
            return 0
        return min(-(-amount * self.basis_points // ONE_IN_BASIS_POINTS), self.maximum_fee)

    def amount_before_fee(self, received: int) -> int:
        """The least transfer that delivers `received`: the inverse the DLMM SDK uses for
        exact-out (dlmm-sdk commons/src/token_2022.rs 180-246, `calculate_pre_fee_amount`
        and `calculate_inverse_fee`)."""
        if received == 0 or self.basis_points == 0:
            return received
        if self.basis_points == ONE_IN_BASIS_POINTS:
            return received + self.maximum_fee
        denominator = ONE_IN_BASIS_POINTS - self.basis_points
        raw = -(-received * ONE_IN_BASIS_POINTS // denominator)
        before = received + self.maximum_fee if raw - received >= self.maximum_fee else raw
        return received + self.fee_on(before)


def mint_extensions(mint: Mint) -> list[tuple[int, bytes]]:
    """A Token-2022 mint's extensions as (type, value); none for SPL Token mints."""
    data = mint.data
    if mint.program != TOKEN_2022_PROGRAM or len(data) <= EXTENSIONS_OFFSET or data[ACCOUNT_TYPE_OFFSET] != 1:
        return []
    found: list[tuple[int, bytes]] = []
    offset = EXTENSIONS_OFFSET
    while offset + 4 <= len(data):
        kind, length = struct.unpack_from("<HH", data, offset)
        if kind == 0:  # uninitialized: the rest is padding
            break
        found.append((kind, bytes(data[offset + 4 : offset + 4 + length])))
        offset += 4 + length
    return found


def transfer_fee(mint: Mint, epoch: int) -> TransferFee | None:
    """The transfer fee in force at `epoch`: the newer one from its epoch on, else the older
    (TransferFeeConfig: two authorities, withheld amount, then older and newer fees, each
    epoch u64, maximum fee u64, basis points u16; `get_epoch_fee`)."""
    for kind, value in mint_extensions(mint):
        if kind == TRANSFER_FEE_CONFIG and len(value) >= 108:
            older = TransferFee(*struct.unpack_from("<QQH", value, 72))
            newer = TransferFee(*struct.unpack_from("<QQH", value, 90))
            return newer if epoch >= newer.epoch else older
    return None


def unsupported_extensions(mint: Mint) -> list[str]:
    """What makes a mint untradeable for us: a transfer hook (its program may change or
    refuse any transfer; we cannot quote it), non-transferable, paused, new accounts frozen
    by default, or an extension we do not know."""
    found: list[str] = []
    for kind, value in mint_extensions(mint):
        if kind in _HARMLESS_EXTENSIONS or kind == TRANSFER_FEE_CONFIG:
            continue
        if kind == TRANSFER_HOOK and value[32:64] == bytes(32):
            continue  # no hook program set
        if kind == PAUSABLE and (len(value) < 33 or not value[32]):
            continue  # not paused (authority, then the paused flag)
        if kind == DEFAULT_ACCOUNT_STATE and value[:1] != b"\x02":
            continue  # new accounts initialized, not frozen
        found.append(_EXTENSION_NAMES.get(kind, f"extension {kind}"))
    return found
