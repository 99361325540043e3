"""The programs every swap transaction touches, emulated: System (transfer,
create_account), Compute Budget (limit and price), SPL Token and Token-2022 (Transfer,
TransferChecked, CloseAccount, SyncNative, InitializeAccount3), Associated Token Account
(Create, CreateIdempotent) and Memo. Error codes are the programs' own (`TokenError` in
spl-token `error.rs`, `SystemError` in the system program); compute units are close to
what mainnet reports, which is all the engine's compute-limit margin needs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from solders.instruction import CompiledInstruction
from solders.pubkey import Pubkey

from onchain.spl import (
    ACCOUNT_LEN,
    ASSOCIATED_TOKEN_PROGRAM,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    TOKEN_PROGRAMS,
    associated_token_address,
)
from tests.solana_node.accounts import (
    SYSTEM_PROGRAM,
    TRANSFER_FEE_AMOUNT,
    Account,
    associated_account_extensions,
    extensions,
    is_token_account,
    mint_decimals,
    read_token,
    rent_exempt_minimum,
    token_account_data,
    transfer_fee,
    with_amount,
    withheld_fees,
    withhold,
)
from tests.solana_node.invocation import InstructionFailure, Invocation, custom

COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_V1_PROGRAM = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")

DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MAX_COMPUTE_UNITS = 1_400_000

# SystemError (solana-program system_instruction.rs)
ACCOUNT_ALREADY_IN_USE = 0
RESULT_WITH_NEGATIVE_LAMPORTS = 1
# TokenError (spl-token error.rs; Token-2022 extends the same enum)
INSUFFICIENT_FUNDS = 1
MINT_MISMATCH = 3
OWNER_MISMATCH = 4
ALREADY_IN_USE = 6
NON_NATIVE_HAS_BALANCE = 11
MINT_DECIMALS_MISMATCH = 18
NON_NATIVE_NOT_SUPPORTED = 19
# Token-2022's additions (spl-token-2022 error.rs, "// 30" onwards)
MINT_REQUIRED_FOR_TRANSFER = 31  # a plain Transfer of a token that charges transfer fees
ACCOUNT_HAS_WITHHELD_TRANSFER_FEES = 35  # closing an account whose withheld fees were not harvested

# A built-in program: (invocation, instruction data, the instruction's accounts) -> units.
BuiltinProgram = Callable[[Invocation, bytes, list[Pubkey]], int]


@dataclass(frozen=True)
class ComputeBudget:
    unit_limit: int
    unit_price_micro_lamports: int

    def priority_fee(self) -> int:
        return -(-self.unit_limit * self.unit_price_micro_lamports // 1_000_000)


def compute_budget(
    program_ids: Sequence[Pubkey], instructions: Sequence[CompiledInstruction]
) -> ComputeBudget:
    """The limit and price a transaction asks for: SetComputeUnitLimit (2, u32) and
    SetComputeUnitPrice (3, u64); without a limit, 200 000 per other instruction."""
    limit: int | None = None
    price = 0
    others = 0
    for program_id, instruction in zip(program_ids, instructions, strict=True):
        data = bytes(instruction.data)
        if program_id != COMPUTE_BUDGET_PROGRAM:
            others += 1
        elif data[:1] == b"\x02" and len(data) >= 5:
            (limit,) = struct.unpack_from("<I", data, 1)
        elif data[:1] == b"\x03" and len(data) >= 9:
            (price,) = struct.unpack_from("<Q", data, 1)
    if limit is None:
        limit = DEFAULT_UNITS_PER_INSTRUCTION * others
    return ComputeBudget(min(limit, MAX_COMPUTE_UNITS), price)


def _compute_budget_program(invocation: Invocation, data: bytes, keys: list[Pubkey]) -> int:
    if data[:1] not in (b"\x02", b"\x03"):
        raise InstructionFailure("InvalidInstructionData")
    return 150


def _memo_program(invocation: Invocation, data: bytes, keys: list[Pubkey]) -> int:
    for key in keys:  # the memo program requires every account it is given to sign
        invocation.require_signer(key)
    invocation.logs.append(f'Program log: Memo (len {len(data)}): "{data.decode(errors="replace")}"')
    return 300 + 100 * len(keys)


def _debit(invocation: Invocation, key: Pubkey, lamports: int) -> None:
    account = invocation.existing(key)
    if account.lamports < lamports:
        raise custom(
            RESULT_WITH_NEGATIVE_LAMPORTS, f"{key} has {account.lamports} lamports, needs {lamports}"
        )
    invocation.put(key, account.with_lamports(account.lamports - lamports))


def _credit(invocation: Invocation, key: Pubkey, lamports: int) -> None:
    account = invocation.get(key) or Account(0, SYSTEM_PROGRAM)
    invocation.put(key, account.with_lamports(account.lamports + lamports))


def _system_program(invocation: Invocation, data: bytes, keys: list[Pubkey]) -> int:
    if len(data) < 4:
        raise InstructionFailure("InvalidInstructionData")
    (kind,) = struct.unpack_from("<I", data)
    if kind == 2:  # Transfer { lamports }
        (lamports,) = struct.unpack_from("<Q", data, 4)
        source, destination = keys[0], keys[1]
        invocation.require_signer(source)
        if (payer := invocation.get(source)) is not None and payer.data:
            raise InstructionFailure("InvalidArgument", "Transfer: `from` must not carry data")
        _debit(invocation, source, lamports)
        _credit(invocation, destination, lamports)
        return 150
    if kind == 0:  # CreateAccount { lamports, space, owner }
        lamports, space = struct.unpack_from("<QQ", data, 4)
        owner = Pubkey(data[20:52])
        funder, new = keys[0], keys[1]
        invocation.require_signer(funder)
        invocation.require_signer(new)
        existing = invocation.get(new)
        if existing is not None and (existing.lamports or existing.data):
            raise custom(ACCOUNT_ALREADY_IN_USE, f"Create Account: account {new} already in use")
        _debit(invocation, funder, lamports)
        invocation.put(new, Account(lamports, owner, bytes(space)))
        return 150
    raise InstructionFailure("InvalidInstructionData", f"system instruction {kind} is not emulated")


def _token_state(invocation: Invocation, key: Pubkey, program: Pubkey) -> Account:
    account = invocation.existing(key)
    if account.owner != program:
        raise InstructionFailure("IncorrectProgramId", f"{key} is owned by {account.owner}")
    if not is_token_account(account):
        raise InstructionFailure("InvalidAccountData", f"{key} is not a token account")
    return account


def transfer_tokens(
    invocation: Invocation,
    source: Pubkey,
    destination: Pubkey,
    amount: int,
    authority: Pubkey,
    *,
    authority_is_program: bool = False,
    checked_decimals: int | None = None,
    token_program: Pubkey | None = None,
) -> None:
    """Move tokens as SPL Token does: the authority owns the source and signed (or is a
    PDA of the calling program), the mints match, the source holds enough; Token-2022
    withholds its transfer fee in the destination; wrapped SOL moves its lamports too."""
    source_account = invocation.existing(source)
    program = token_program or source_account.owner  # a venue's CPI goes to the source's program
    source_account = _token_state(invocation, source, program)
    destination_account = _token_state(invocation, destination, program)
    source_state = read_token(source_account.data)
    destination_state = read_token(destination_account.data)
    if source_state.mint != destination_state.mint:
        raise custom(MINT_MISMATCH, "Error: Account not associated with this Mint")
    if source_state.owner != authority:
        raise custom(OWNER_MISMATCH, "Error: owner does not match")
    if not (authority_is_program and not authority.is_on_curve()):
        invocation.require_signer(authority)
    mint = invocation.get(source_state.mint)
    if checked_decimals is not None and mint is not None and mint_decimals(mint) != checked_decimals:
        raise custom(MINT_DECIMALS_MISMATCH, "Error: decimals different from the Mint decimals")
    fee = transfer_fee(mint, amount, invocation.epoch) if mint is not None else 0
    # an account of a mint that charges transfer fees moves only with TransferChecked
    if checked_decimals is None and TRANSFER_FEE_AMOUNT in extensions(source_account.data, ACCOUNT_LEN):
        raise custom(MINT_REQUIRED_FOR_TRANSFER, "Error: mint required for this account to transfer")
    if source_state.amount < amount:
        raise custom(INSUFFICIENT_FUNDS, "Error: insufficient funds")
    if source == destination:
        return
    invocation.put(
        source, source_account.with_data(with_amount(source_account.data, source_state.amount - amount))
    )
    received = destination_state.amount + amount - fee
    destination_data = withhold(with_amount(destination_account.data, received), fee)
    invocation.put(destination, destination_account.with_data(destination_data))
    if source_state.native_reserve is not None:  # wrapped SOL: the lamports are the tokens
        _debit(invocation, source, amount)
        _credit(invocation, destination, amount)
    invocation.logs.append(
        f"Program log: Instruction: Transfer{'Checked' if checked_decimals is not None else ''}"
    )


def _token_program(program: Pubkey) -> BuiltinProgram:
    def run(invocation: Invocation, data: bytes, keys: list[Pubkey]) -> int:
        kind = data[0] if data else -1
        if kind == 3:  # Transfer { amount }: source, destination, authority
            (amount,) = struct.unpack_from("<Q", data, 1)
            transfer_tokens(invocation, keys[0], keys[1], amount, keys[2], token_program=program)
            return 4_645
        if kind == 12:  # TransferChecked { amount, decimals }: source, mint, destination, authority
            (amount,) = struct.unpack_from("<Q", data, 1)
            transfer_tokens(
                invocation, keys[0], keys[2], amount, keys[3], checked_decimals=data[9], token_program=program
            )
            return 6_200
        if kind == 9:  # CloseAccount: account, destination, owner
            account = _token_state(invocation, keys[0], program)
            state = read_token(account.data)
            if state.native_reserve is None and state.amount:
                raise custom(
                    NON_NATIVE_HAS_BALANCE,
                    "Error: Non-native account can only be closed if its balance is zero",
                )
            if state.owner != keys[2]:
                raise custom(OWNER_MISMATCH, "Error: owner does not match")
            invocation.require_signer(keys[2])
            if withheld_fees(account.data):
                raise custom(ACCOUNT_HAS_WITHHELD_TRANSFER_FEES, "Error: account has withheld transfer fees")
            invocation.put(keys[0], None)
            _credit(invocation, keys[1], account.lamports)
            invocation.logs.append("Program log: Instruction: CloseAccount")
            return 2_916
        if kind == 17:  # SyncNative: account
            account = _token_state(invocation, keys[0], program)
            state = read_token(account.data)
            if state.native_reserve is None:
                raise custom(
                    NON_NATIVE_NOT_SUPPORTED, "Error: Instruction does not support non-native tokens"
                )
            amount = account.lamports - state.native_reserve
            invocation.put(keys[0], account.with_data(with_amount(account.data, amount)))
            invocation.logs.append("Program log: Instruction: SyncNative")
            return 3_045
        if kind == 18:  # InitializeAccount3 { owner }: account, mint
            account = invocation.existing(keys[0])
            if account.owner != program or len(account.data) < ACCOUNT_LEN:
                raise InstructionFailure("InvalidAccountData")
            if account.data[108] != 0:
                raise custom(ALREADY_IN_USE, "Error: account or token already in use")
            invocation.existing(keys[1])
            reserve = rent_exempt_minimum(len(account.data)) if keys[1] == NATIVE_MINT else None
            amount = account.lamports - reserve if reserve is not None else 0
            fresh = token_account_data(keys[1], Pubkey(data[1:33]), amount, reserve)
            invocation.put(keys[0], account.with_data(fresh + account.data[ACCOUNT_LEN:]))
            invocation.logs.append("Program log: Instruction: InitializeAccount3")
            return 3_158
        raise InstructionFailure("InvalidInstructionData", f"token instruction {kind} is not emulated")

    return run


def _associated_token_program(invocation: Invocation, data: bytes, keys: list[Pubkey]) -> int:
    """Create (b"" or 0) and CreateIdempotent (1): payer, account, wallet, mint, system
    program, token program (spl-associated-token-account processor.rs)."""
    idempotent = data[:1] == b"\x01"
    if data[:1] not in (b"", b"\x00", b"\x01"):
        raise InstructionFailure("InvalidInstructionData")
    payer, address, wallet, mint, token_program = keys[0], keys[1], keys[2], keys[3], keys[5]
    if token_program not in TOKEN_PROGRAMS:
        raise InstructionFailure("IncorrectProgramId")
    if address != associated_token_address(wallet, mint, token_program):
        raise InstructionFailure("InvalidSeeds", "Associated address does not match seed derivation")
    existing = invocation.get(address)
    if existing is not None and existing.owner == token_program and is_token_account(existing):
        state = read_token(existing.data)
        if idempotent and state.owner == wallet and state.mint == mint:
            invocation.logs.append("Program log: CreateIdempotent")
            return 4_000
        raise custom(ACCOUNT_ALREADY_IN_USE, f"Create Account: account {address} already in use")
    if existing is not None and existing.data:
        raise InstructionFailure("IllegalOwner")
    mint_account = invocation.existing(mint)
    if mint_account.owner != token_program:
        raise InstructionFailure("IncorrectProgramId", f"mint {mint} is not owned by {token_program}")
    invocation.require_signer(payer)
    size = ACCOUNT_LEN + (len(tlv) + 1 if (tlv := associated_account_extensions(mint_account)) else 0)
    required = rent_exempt_minimum(size)
    held = existing.lamports if existing is not None else 0
    if required > held:
        _debit(invocation, payer, required - held)
    lamports = max(required, held)
    native_reserve = required if mint == NATIVE_MINT else None
    amount = lamports - required if native_reserve is not None else 0
    invocation.put(
        address,
        Account(lamports, token_program, token_account_data(mint, wallet, amount, native_reserve, tlv)),
    )
    invocation.logs.append("Program log: Create")
    return 21_000


BUILTIN_PROGRAMS: dict[Pubkey, BuiltinProgram] = {
    SYSTEM_PROGRAM: _system_program,
    COMPUTE_BUDGET_PROGRAM: _compute_budget_program,
    TOKEN_PROGRAM: _token_program(TOKEN_PROGRAM),
    TOKEN_2022_PROGRAM: _token_program(TOKEN_2022_PROGRAM),
    ASSOCIATED_TOKEN_PROGRAM: _associated_token_program,
    MEMO_PROGRAM: _memo_program,
    MEMO_V1_PROGRAM: _memo_program,
}
