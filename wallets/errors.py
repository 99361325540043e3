"""What the wallet queries refuse; callers turn them into their own domain errors (a
placement's 422, the chain's INSUFFICIENT_FUNDS)."""

from __future__ import annotations


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
