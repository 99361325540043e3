"""The node's chain: accounts, a clock of slots and block heights with one blockhash per
slot (a transaction is valid while the block height is at most its blockhash's height
+ 150, as on Solana), and the transactions received, pending and landed.

A transaction lands at the first slot after it was received, executed atomically against
the accounts (runtime.py); landing can be held so that pending transactions expire.
Everything is guarded by one lock: the HTTP threads and the slot timer share it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from onchain.spl import (
    ACCOUNT_LEN,
    MINT_LEN,
    NATIVE_MINT,
    TOKEN_PROGRAM,
    TOKEN_PROGRAMS,
    associated_token_address,
)
from tests.solana_node.accounts import (
    SYSTEM_PROGRAM,
    Account,
    associated_account_extensions,
    is_token_account,
    read_token,
    rent_exempt_minimum,
    token_account_data,
    with_amount,
)
from tests.solana_node.programs import VenueProgram
from tests.solana_node.runtime import Execution, TransactionRejected, execute

MAX_PROCESSING_AGE = 150  # blocks a blockhash stays valid for (lastValidBlockHeight = height + 150)
SLOTS_PER_EPOCH = 432_000
# How many slots behind the tip each commitment level sees.
COMMITMENT_DEPTH = {"processed": 0, "confirmed": 1, "finalized": 32}
FIRST_SLOT = 400_000_000  # mainnet-like numbers, so that epochs in fixture accounts apply
FIRST_BLOCK_HEIGHT = 378_000_000  # lower than the slot, as on mainnet (skipped slots)


class TransactionRuntime(Protocol):
    """Runs a transaction over the accounts at the node's clock instead of the emulation
    (litesvm_runtime.py: the real program binaries); the node commits its changes."""

    def __call__(
        self,
        transaction: VersionedTransaction,
        base: Mapping[Pubkey, Account],
        slot: int,
        epoch: int,
        unix_timestamp: int,
    ) -> Execution: ...


@dataclass(frozen=True)
class LandedTransaction:
    signature: Signature
    transaction: VersionedTransaction
    slot: int
    block_time: int
    execution: Execution


@dataclass(frozen=True)
class TransactionStatus:
    slot: int
    confirmations: int | None  # None once finalized
    error: object | None
    confirmation_status: str  # processed | confirmed | finalized


def _blockhash_of(slot: int) -> Hash:
    return Hash(hashlib.sha256(b"solana-node-test-blockhash:%d" % slot).digest())


def native_mint_account() -> Account:
    """So11111111111111111111111111111111111111112: 9 decimals, initialized, no authority."""
    data = bytes(36) + bytes(8) + bytes([9, 1]) + bytes(36)
    assert len(data) == MINT_LEN
    return Account(rent_exempt_minimum(MINT_LEN), TOKEN_PROGRAM, data)


class ChainState:
    def __init__(
        self,
        accounts: Mapping[Pubkey, Account] | None = None,
        *,
        slot_ms: int = 400,
        unix_time: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[Pubkey, Account] = dict(accounts or {})
        self.accounts.setdefault(NATIVE_MINT, native_mint_account())
        self.venues: dict[Pubkey, VenueProgram] = {}
        self.runtime: TransactionRuntime | None = None  # None: runtime.py with the emulated venues
        self.slot_ms = slot_ms
        self.slot = FIRST_SLOT
        self.block_height = FIRST_BLOCK_HEIGHT
        self._first_unix_time = int(time.time()) if unix_time is None else unix_time
        self._blockhash_slots: dict[Hash, int] = {}
        for back in range(MAX_PROCESSING_AGE + 64, -1, -1):  # history for lagging commitments
            self._blockhash_slots[_blockhash_of(self.slot - back)] = self.slot - back
        self.pending: dict[Signature, VersionedTransaction] = {}
        self.landed: dict[Signature, LandedTransaction] = {}
        self.holding = False
        self.lag_slots = 0
        self.program_panics: list[Exception] = []  # venue emulation bugs, for tests to surface

    # -- clock -------------------------------------------------------------------------

    def unix_time(self, slot: int | None = None) -> int:
        return (
            self._first_unix_time
            + ((self.slot if slot is None else slot) - FIRST_SLOT) * self.slot_ms // 1000
        )

    def epoch(self) -> int:
        return self.slot // SLOTS_PER_EPOCH

    def visible_slot(self, commitment: str = "processed") -> int:
        """The slot a (lagging) node answers as of, at a commitment level."""
        return self.slot - self.lag_slots - COMMITMENT_DEPTH.get(commitment, 0)

    def visible_block_height(self, commitment: str = "processed") -> int:
        return self.block_height - (self.slot - self.visible_slot(commitment))

    def latest_blockhash(self, commitment: str = "processed") -> tuple[Hash, int]:
        slot = self.visible_slot(commitment)
        height = self.visible_block_height(commitment)
        return _blockhash_of(slot), height + MAX_PROCESSING_AGE

    def blockhash_is_valid(self, blockhash: Hash, bank_slot: int | None = None) -> bool:
        """Whether the bank at `bank_slot` (the tip by default) knows the blockhash and
        its block height has not passed the blockhash's last valid block height: a
        blockhash younger than a finalized bank is as unknown to it as a stale one."""
        slot = self._blockhash_slots.get(blockhash)
        bank_slot = self.slot if bank_slot is None else bank_slot
        if slot is None or slot > bank_slot:
            return False
        # heights advance with slots, so "height <= its height + 150" compares slots
        return bank_slot <= slot + MAX_PROCESSING_AGE

    def advance(self, slots: int = 1) -> None:
        """Produce `slots` blocks; each lands what was received before it."""
        with self.lock:
            for _ in range(slots):
                self.slot += 1
                self.block_height += 1
                self._blockhash_slots[_blockhash_of(self.slot)] = self.slot
                self._land_pending()

    # -- transactions --------------------------------------------------------------------

    def receive(self, transaction: VersionedTransaction) -> Signature:
        """Queue a transaction for the next slot; one already pending or landed is not
        queued again (its signature identifies it)."""
        signature = transaction.signatures[0]
        with self.lock:
            if signature not in self.landed:
                self.pending.setdefault(signature, transaction)
        return signature

    def _land_pending(self) -> None:
        for signature, transaction in list(self.pending.items()):
            blockhash = transaction.message.recent_blockhash
            if not self.blockhash_is_valid(blockhash):
                del self.pending[signature]  # expired: it can never land now
                continue
            if self.holding:
                continue
            del self.pending[signature]
            try:
                execution = self.execute(transaction)
            except TransactionRejected:
                continue  # the fee payer cannot pay: dropped, as a leader drops it
            self._commit(execution)
            self.landed[signature] = LandedTransaction(
                signature, transaction, self.slot, self.unix_time(), execution
            )

    def execute(self, transaction: VersionedTransaction) -> Execution:
        message = transaction.message
        if not isinstance(message, Message | MessageV0):
            raise TransactionRejected("UnsupportedVersion")
        if self.runtime is not None:
            return self.runtime(transaction, self.accounts, self.slot, self.epoch(), self.unix_time())
        execution = execute(message, self.accounts, self.venues, self.unix_time(), self.epoch())
        self.program_panics.extend(execution.panics)
        return execution

    def _commit(self, execution: Execution) -> None:
        for key, account in execution.changes.items():
            if account is None:
                self.accounts.pop(key, None)
            else:
                self.accounts[key] = account

    def status(self, signature: Signature) -> TransactionStatus | None:
        """As a lagging node would say: nothing about what landed after its slot."""
        landed = self.landed.get(signature)
        tip = self.visible_slot()
        if landed is None or landed.slot > tip:
            return None
        depth = tip - landed.slot
        if depth >= COMMITMENT_DEPTH["finalized"]:
            return TransactionStatus(landed.slot, None, landed.execution.error, "finalized")
        level = "confirmed" if depth >= COMMITMENT_DEPTH["confirmed"] else "processed"
        return TransactionStatus(landed.slot, depth, landed.execution.error, level)

    def landed_at(self, signature: Signature, commitment: str) -> LandedTransaction | None:
        landed = self.landed.get(signature)
        if landed is None or landed.slot > self.visible_slot(commitment):
            return None
        return landed

    # -- what tests set up ---------------------------------------------------------------

    def set_account(self, address: Pubkey, account: Account) -> None:
        with self.lock:
            self.accounts[address] = account

    def fund_sol(self, owner: Pubkey, lamports: int) -> None:
        with self.lock:
            current = self.accounts.get(owner) or Account(0, SYSTEM_PROGRAM)
            self.accounts[owner] = current.with_lamports(current.lamports + lamports)

    def mint_tokens_to(self, owner: Pubkey, mint: Pubkey, amount: int) -> Pubkey:
        """Give `owner` `amount` base units of `mint` in its associated token account
        (created rent-exempt if missing; wrapped SOL gets the lamports too)."""
        with self.lock:
            mint_account = self.accounts.get(mint)
            if mint_account is None or mint_account.owner not in TOKEN_PROGRAMS:
                raise ValueError(f"no mint {mint} on this node")
            program = mint_account.owner
            address = associated_token_address(owner, mint, program)
            account = self.accounts.get(address)
            if account is None or not is_token_account(account):
                tlv = associated_account_extensions(mint_account)
                reserve = rent_exempt_minimum(ACCOUNT_LEN + (len(tlv) + 1 if tlv else 0))
                native_reserve = reserve if mint == NATIVE_MINT else None
                account = Account(reserve, program, token_account_data(mint, owner, 0, native_reserve, tlv))
            state = read_token(account.data)
            account = account.with_data(with_amount(account.data, state.amount + amount))
            if state.native_reserve is not None:
                account = account.with_lamports(account.lamports + amount)
            self.accounts[address] = account
            return address
