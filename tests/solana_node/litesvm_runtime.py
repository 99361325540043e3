"""The node's transactions run by real programs: solders' LiteSVM (the Agave SVM) with the
venues' program binaries, instead of runtime.py's emulation.

The node's accounts stay the state of record (every test control, getMultipleAccounts,
fault injection and expiry work unchanged); LiteSVM is only the executor. Per
transaction, the accounts the message names are copied into LiteSVM (an account the node
lacks is cleared there, so nothing stale from an earlier transaction survives), the Clock
sysvar is set from the node's clock (the pair's volatility and fees read its timestamp),
the transaction is simulated, and the writable accounts' post states come back as the
changes the node commits. A message must name every account an instruction touches, so
its keys are all LiteSVM needs (the engine sends v0 messages without lookup tables).

LiteSVM() carries its own System, Compute Budget (native), SPL Token, Token-2022 and
Associated Token Account programs (BPF builds); it applies the transaction's compute-unit
limit and price and reports the fee it charged, which the meta reports. Signatures and
blockhashes are the node's business (it checks both), so LiteSVM checks neither.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from solders.account import Account as SvmAccount
from solders.clock import Clock
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    InstructionErrorCustom,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
)

from tests.solana_node.accounts import SYSTEM_PROGRAM, Account
from tests.solana_node.runtime import (
    Execution,
    TransactionError,
    TransactionRejected,
    settled,
    writable_keys,
)

SYSVAR_OWNER = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")
_EMPTY = SvmAccount(0, b"", SYSTEM_PROGRAM, False, 0)


class LiteSvmRuntime:
    """Executes a transaction against the node's accounts with real program binaries
    (program id -> path of its .so)."""

    def __init__(self, programs: Mapping[Pubkey, Path]) -> None:
        self._svm = LiteSVM().with_sigverify(False).with_blockhash_check(False)
        for program_id, path in programs.items():
            self._svm.add_program(program_id, path.read_bytes())
        self._lock = threading.Lock()  # one LiteSVM, called from HTTP threads and the slot timer

    def __call__(
        self,
        transaction: VersionedTransaction,
        base: Mapping[Pubkey, Account],
        slot: int,
        epoch: int,
        unix_timestamp: int,
    ) -> Execution:
        message = transaction.message
        assert isinstance(message, Message | MessageV0)
        keys = list(message.account_keys)
        with self._lock:
            for key in keys:
                self._load(key, base.get(key))
            # epoch_start_timestamp 0, as the node's own Clock sysvar says (node.py _read)
            self._svm.set_clock(Clock(slot, 0, epoch, epoch, unix_timestamp))
            result = self._svm.simulate_transaction(transaction)
        if isinstance(result, FailedTransactionMetadata):
            failure = result.err()
            error = _error_json(failure)
            if not _lands(failure):
                raise TransactionRejected(error)  # failed before execution: never lands, no fee
            meta = result.meta()
            payer = base[keys[0]]
            changes: dict[Pubkey, Account | None] = {
                keys[0]: payer.with_lamports(payer.lamports - meta.fee())
            }
            return settled(
                keys, base, changes, error, meta.fee(), tuple(meta.logs()), meta.compute_units_consumed()
            )
        meta = result.meta()
        writable = writable_keys(message)
        changes = {key: _node_account(account) for key, account in result.post_accounts() if key in writable}
        return settled(
            keys, base, changes, None, meta.fee(), tuple(meta.logs()), meta.compute_units_consumed()
        )

    def _load(self, key: Pubkey, account: Account | None) -> None:
        present = self._svm.get_account(key)
        if present is not None and (present.executable or present.owner == SYSVAR_OWNER):
            return  # a program or sysvar LiteSVM provides (the node holds none of them)
        if account is None:
            if present is not None:
                self._svm.set_account(key, _EMPTY)  # closed on the node since
            return
        self._svm.set_account(
            key, SvmAccount(account.lamports, account.data, account.owner, account.executable, 0)
        )


def _node_account(account: SvmAccount) -> Account | None:
    if account.lamports == 0:
        return None  # closed (e.g. the wrapped-SOL account at the end of a swap)
    return Account(account.lamports, account.owner, bytes(account.data), account.executable)


def _lands(error: object) -> bool:
    """Only an error in execution lands (fee charged, nothing else kept); one in loading
    (the fee payer cannot pay, an account or program missing) drops the transaction."""
    return isinstance(error, TransactionErrorInstructionError | TransactionErrorInsufficientFundsForRent)


def _error_json(error: object) -> TransactionError:
    """Solana's TransactionError in its JSON-RPC form: "Name", {"InstructionError": [i,
    {"Custom": code}]} or {"InstructionError": [i, "Name"]}."""
    if isinstance(error, TransactionErrorInstructionError):
        inner = error.err
        detail: object = {"Custom": inner.code} if isinstance(inner, InstructionErrorCustom) else _name(inner)
        return {"InstructionError": [error.index, detail]}
    if isinstance(error, TransactionErrorInsufficientFundsForRent):
        return {"InsufficientFundsForRent": {"account_index": error.account_index}}
    return _name(error)


def _name(fieldless: object) -> str:
    return str(fieldless).rsplit(".", 1)[-1]  # "TransactionErrorFieldless.AccountNotFound"


__all__ = ["LiteSvmRuntime"]
