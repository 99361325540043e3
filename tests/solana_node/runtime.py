"""Running one transaction against the accounts: the fee first (5 000 lamports per
signature plus the priority fee, charged even when an instruction fails), then every
instruction on a working copy that is kept only if all of them succeed, within the
compute-unit limit the transaction asked for. What it returns is what `getTransaction`'s
meta reports: exact pre/post lamports and token balances, fee, logs, units, error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from solders.message import Message, MessageV0
from solders.pubkey import Pubkey

from tests.solana_node.accounts import (
    SYSTEM_PROGRAM,
    Account,
    is_token_account,
    mint_decimals,
    read_token,
    rent_exempt_minimum,
)
from tests.solana_node.builtin_programs import BUILTIN_PROGRAMS, compute_budget, transfer_tokens
from tests.solana_node.invocation import InstructionFailure, Invocation
from tests.solana_node.programs import AccountReader, ProgramFailure, VenueProgram

LAMPORTS_PER_SIGNATURE = 5_000

TransactionError = str | dict[str, object]  # Solana's TransactionError in its JSON form


class TransactionRejected(Exception):
    """The transaction cannot be charged a fee, so it never lands (e.g. the fee payer
    does not exist or cannot pay)."""

    def __init__(self, error: TransactionError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class TokenBalance:
    account_index: int
    mint: Pubkey
    owner: Pubkey
    program_id: Pubkey
    amount: int
    decimals: int


@dataclass(frozen=True)
class Execution:
    error: TransactionError | None
    fee: int
    logs: tuple[str, ...]
    units_consumed: int
    changes: Mapping[Pubkey, Account | None]  # what landing commits (the fee included)
    pre_balances: tuple[int, ...]
    post_balances: tuple[int, ...]
    pre_token_balances: tuple[TokenBalance, ...]
    post_token_balances: tuple[TokenBalance, ...]
    panics: tuple[Exception, ...] = ()  # what venue emulations raised other than ProgramFailure

    def account(self, base: Mapping[Pubkey, Account], key: Pubkey) -> Account | None:
        return self.changes[key] if key in self.changes else base.get(key)


def writable_keys(message: Message | MessageV0) -> frozenset[Pubkey]:
    """Signed writable keys come first, then signed read-only, unsigned writable, unsigned
    read-only (the message header's three counts)."""
    header = message.header
    keys = list(message.account_keys)
    signed = header.num_required_signatures
    return frozenset(
        key
        for index, key in enumerate(keys)
        if (index < signed - header.num_readonly_signed_accounts)
        or (signed <= index < len(keys) - header.num_readonly_unsigned_accounts)
    )


def token_balances(keys: list[Pubkey], view: Mapping[Pubkey, Account | None]) -> tuple[TokenBalance, ...]:
    balances = []
    for index, key in enumerate(keys):
        account = view.get(key)
        if account is None or not is_token_account(account):
            continue
        state = read_token(account.data)
        mint = view.get(state.mint)
        decimals = mint_decimals(mint) if mint is not None else 0
        balances.append(TokenBalance(index, state.mint, state.owner, account.owner, state.amount, decimals))
    return tuple(balances)


def _view(
    base: Mapping[Pubkey, Account], keys: list[Pubkey], changes: Mapping[Pubkey, Account | None]
) -> dict[Pubkey, Account | None]:
    """The accounts a transaction sees (its changes over the base state): its keys and the
    mints of its token accounts."""
    view: dict[Pubkey, Account | None] = {}
    wanted = set(keys)
    for key in keys:  # the mints of the message's token accounts, for their decimals
        account = changes[key] if key in changes else base.get(key)
        if account is not None and is_token_account(account):
            wanted.add(read_token(account.data).mint)
    for key in wanted:
        view[key] = changes[key] if key in changes else base.get(key)
    return view


def execute(
    message: Message | MessageV0,
    base: Mapping[Pubkey, Account],
    venues: Mapping[Pubkey, VenueProgram],
    unix_timestamp: int,
    epoch: int,
) -> Execution:
    keys = list(message.account_keys)
    instructions = list(message.instructions)
    program_ids = [keys[instruction.program_id_index] for instruction in instructions]
    budget = compute_budget(program_ids, instructions)
    fee = LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + budget.priority_fee()
    payer = keys[0]
    payer_account = base.get(payer)
    if payer_account is None:
        raise TransactionRejected("AccountNotFound")
    if payer_account.owner != SYSTEM_PROGRAM or payer_account.data:
        raise TransactionRejected("InvalidAccountForFee")
    if payer_account.lamports < fee:
        raise TransactionRejected("InsufficientFundsForFee")
    charged = payer_account.with_lamports(payer_account.lamports - fee)
    if _leaves_rent_unpaid(payer_account, charged):
        raise TransactionRejected({"InsufficientFundsForRent": {"account_index": 0}})

    signers = frozenset(keys[: message.header.num_required_signatures])
    invocation = Invocation(base, signers, writable_keys(message), unix_timestamp, epoch)
    invocation.changes[payer] = charged
    logs = invocation.logs
    consumed = 0
    error: TransactionError | None = None
    for index, (program_id, instruction) in enumerate(zip(program_ids, instructions, strict=True)):
        data = bytes(instruction.data)
        accounts = [keys[position] for position in bytes(instruction.accounts)]
        logs.append(f"Program {program_id} invoke [1]")
        try:
            units = _run(invocation, program_id, data, accounts, venues)
            if consumed + units > budget.unit_limit:
                units = budget.unit_limit - consumed
                consumed = budget.unit_limit
                logs.append(f"Program {program_id} consumed {units} of {units} compute units")
                logs.append(f"Program {program_id} failed: exceeded CUs meter at BPF instruction")
                error = {"InstructionError": [index, "ComputationalBudgetExceeded"]}
                break
            consumed += units
            logs.append(
                f"Program {program_id} consumed {units} of {budget.unit_limit - consumed + units} compute units"
            )
            logs.append(f"Program {program_id} success")
        except InstructionFailure as failure:
            logs.append(f"Program {program_id} failed: {failure.message or failure.error}")
            error = {"InstructionError": [index, failure.error]}
            break
        except ProgramFailure as failure:
            logs.append(f"Program log: Error Number: {failure.code}. Error Message: {failure.message}.")
            logs.append(f"Program {program_id} failed: custom program error: {failure.code:#x}")
            error = {"InstructionError": [index, {"Custom": failure.code}]}
            break

    if error is None:
        for index, key in enumerate(keys):
            if key in invocation.changes and _leaves_rent_unpaid(base.get(key), invocation.changes[key]):
                error = {"InsufficientFundsForRent": {"account_index": index}}
                break
    changes: Mapping[Pubkey, Account | None] = (
        {payer: charged} if error is not None else dict(invocation.changes)
    )
    return settled(keys, base, changes, error, fee, tuple(logs), consumed, tuple(invocation.panics))


def settled(
    keys: list[Pubkey],
    base: Mapping[Pubkey, Account],
    changes: Mapping[Pubkey, Account | None],
    error: TransactionError | None,
    fee: int,
    logs: tuple[str, ...],
    units_consumed: int,
    panics: tuple[Exception, ...] = (),
) -> Execution:
    """What the meta reports of changes over the base state: pre/post lamports and token
    balances of the message's keys, read from the accounts before and after."""
    pre = _view(base, keys, {})
    post = _view(base, keys, changes)
    return Execution(
        error=error,
        fee=fee,
        logs=logs,
        units_consumed=units_consumed,
        changes=changes,
        pre_balances=tuple(_lamports(pre.get(key)) for key in keys),
        post_balances=tuple(_lamports(post.get(key)) for key in keys),
        pre_token_balances=token_balances(keys, pre),
        post_token_balances=token_balances(keys, post),
        panics=panics,
    )


def _leaves_rent_unpaid(before: Account | None, after: Account | None) -> bool:
    """The runtime's rent-state rule: an account may hold 0 lamports or at least the
    rent-exempt minimum; one that was already below it (rent-paying) may stay so."""
    if after is None or after.lamports >= rent_exempt_minimum(len(after.data)):
        return False
    was_rent_paying = before is not None and 0 < before.lamports < rent_exempt_minimum(len(before.data))
    return not was_rent_paying


def _lamports(account: Account | None) -> int:
    return account.lamports if account is not None else 0


def _run(
    invocation: Invocation,
    program_id: Pubkey,
    data: bytes,
    accounts: list[Pubkey],
    venues: Mapping[Pubkey, VenueProgram],
) -> int:
    builtin = BUILTIN_PROGRAMS.get(program_id)
    if builtin is not None:
        return builtin(invocation, data, accounts)
    venue = venues.get(program_id)
    if venue is None:
        raise InstructionFailure("UnsupportedProgramId", f"no program {program_id} on this node")
    try:
        effect = venue(data, accounts, _reader(invocation), invocation.unix_timestamp)
    except ProgramFailure:
        raise
    except Exception as bug:  # an emulation's bug fails its instruction, as a panic would
        invocation.panics.append(bug)
        raise InstructionFailure("ProgramFailedToComplete", f"panicked: {bug!r}") from bug
    for key, new_data in effect.writes.items():
        account = invocation.existing(key)
        if account.owner != program_id:
            raise InstructionFailure("ExternalAccountDataModified", f"{key} is owned by {account.owner}")
        invocation.put(key, account.with_data(bytes(new_data)))
    for move in effect.moves:
        transfer_tokens(
            invocation,
            move.source,
            move.destination,
            move.amount,
            move.authority,
            authority_is_program=True,
            checked_decimals=_decimals_of(invocation, move.source),
        )
    invocation.logs.extend(effect.logs)
    return effect.compute_units


def _decimals_of(invocation: Invocation, token_account: Pubkey) -> int | None:
    """Venue programs move tokens with TransferChecked (both DLMM and CPMM do)."""
    account = invocation.get(token_account)
    if account is None or not is_token_account(account):
        return None
    mint = invocation.get(read_token(account.data).mint)
    return mint_decimals(mint) if mint is not None else None


def _reader(invocation: Invocation) -> AccountReader:
    def read(key: Pubkey) -> bytes | None:
        account = invocation.get(key)
        return account.data if account is not None else None

    return read
