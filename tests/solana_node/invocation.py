"""What an instruction runs against: the transaction's working copy of the accounts (all
or nothing: the node commits it only when every instruction succeeds), who signed, what
the message lets it write, and the cluster clock."""

from __future__ import annotations

from collections.abc import Mapping

from solders.pubkey import Pubkey

from tests.solana_node.accounts import Account


class InstructionFailure(Exception):
    """An instruction's error, in the JSON form of Solana's `InstructionError` (a variant
    name such as "MissingRequiredSignature", or {"Custom": code})."""

    def __init__(self, error: str | dict[str, int], message: str = "") -> None:
        super().__init__(message or str(error))
        self.error = error
        self.message = message


def custom(code: int, message: str = "") -> InstructionFailure:
    return InstructionFailure({"Custom": code}, message or f"custom program error: {code:#x}")


class Invocation:
    def __init__(
        self,
        base: Mapping[Pubkey, Account],
        signers: frozenset[Pubkey],
        writable: frozenset[Pubkey],
        unix_timestamp: int,
        epoch: int,
    ) -> None:
        self._base = base
        self.changes: dict[Pubkey, Account | None] = {}  # None: the account was closed
        self.signers = signers
        self.writable = writable
        self.unix_timestamp = unix_timestamp
        self.epoch = epoch
        self.logs: list[str] = []
        self.panics: list[Exception] = []  # exceptions a venue emulation raised (its bugs)

    def get(self, key: Pubkey) -> Account | None:
        if key in self.changes:
            return self.changes[key]
        return self._base.get(key)

    def put(self, key: Pubkey, account: Account | None) -> None:
        """Change an account; the message must have marked it writable, as on chain."""
        if key not in self.writable:
            raise InstructionFailure("ReadonlyLamportChange", f"{key} is not writable")
        if account is not None and account.lamports == 0:
            account = None  # an account left without lamports is garbage-collected
        self.changes[key] = account

    def require_signer(self, key: Pubkey) -> None:
        if key not in self.signers:
            raise InstructionFailure("MissingRequiredSignature", f"{key} did not sign")

    def existing(self, key: Pubkey) -> Account:
        account = self.get(key)
        if account is None:
            raise InstructionFailure("UninitializedAccount", f"{key} does not exist")
        return account
