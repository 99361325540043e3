"""What the wallet queries refuse; callers turn them into their own domain errors (a
placement's 422, the chain's INSUFFICIENT_FUNDS). The held keypairs' refusals are
domain errors themselves (their HTTP status and code: api/problems.py renders them)."""

from __future__ import annotations

from core.errors import Conflict, DomainError


class InsufficientFunds(Exception):
    """A reservation does not fit in what the owner has available."""

    def __init__(self, token: str, needed: int, available: int) -> None:
        super().__init__(f"{token}: needs {needed}, {available} available")
        self.token, self.needed, self.available = token, needed, available


class Overdrawn(Exception):
    """A balance move would leave a total below what stays reserved."""

    def __init__(self, token: str, available: int) -> None:
        super().__init__(f"{token}: {available} available")
        self.token, self.available = token, available


class NoWallet(DomainError):
    """On the real chain wallets are never made at first use: an operator imports or
    creates the owner's keypair (`order-engine wallets import|create`)."""

    status, code, title = 422, "no_wallet", "No wallet"

    def __init__(self, owner: str) -> None:
        super().__init__(
            f"{owner} has no wallet on this chain; an operator imports its keypair "
            "(order-engine wallets import) or creates one (order-engine wallets create)"
        )
        self.owner = owner


class WalletExists(Conflict):
    """A wallet is never replaced: its address may hold funds and its orders' history."""

    code, title = "wallet_exists", "Wallet exists"


class InvalidKeypair(DomainError):
    """A keypair file that is not the Solana CLI's JSON array of 64 bytes, or whose
    public half is not the secret half's. The detail never quotes the bytes."""

    status, code, title = 422, "invalid_keypair", "Invalid keypair"


class SealBroken(Exception):
    """A sealed keypair does not open with this ORDER_ENGINE_WALLET_KEY (another key, or
    a token altered in the database)."""
