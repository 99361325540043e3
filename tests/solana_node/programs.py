"""What a venue program does to the node's accounts when one of its instructions runs.

A venue's emulation is a pure function of the instruction and the accounts it reads: it
returns the account data it rewrites and the token transfers it makes, and the node
applies them (checking balances and authorities) or raises the program's error. Token
transfers go through the node's SPL Token emulation, so wallets and vaults move exactly
as the program would move them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from solders.pubkey import Pubkey


@dataclass(frozen=True)
class TokenMove:
    """A token transfer the program makes: `authority` signs for `source` (the user for
    what it pays, the pool's authority PDA for what the pool pays out)."""

    source: Pubkey
    destination: Pubkey
    amount: int
    authority: Pubkey


@dataclass(frozen=True)
class ProgramEffect:
    writes: dict[Pubkey, bytes] = field(default_factory=dict)  # new data of accounts it changes
    moves: tuple[TokenMove, ...] = ()
    compute_units: int = 50_000  # what the instruction consumes
    logs: tuple[str, ...] = ()


class ProgramFailure(Exception):
    """The program's custom error (as `InstructionError: Custom(code)` on chain)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"custom program error {code}: {message}")
        self.code = code
        self.message = message


# (instruction data, the instruction's account keys in order, read an account's data
# (None: no such account), the cluster's unix timestamp) -> what it does.
AccountReader = Callable[[Pubkey], bytes | None]
VenueProgram = Callable[[bytes, list[Pubkey], AccountReader, int], ProgramEffect]
