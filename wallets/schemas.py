"""The shapes of owners' money: what an order may spend, and a wallet as shown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hold:
    """What one order may spend: `amount` of `token`, and up to `fee_lamports` of SOL."""

    owner: str
    token: str
    amount: int
    fee_lamports: int = 0


@dataclass(frozen=True)
class Balance:
    token: str
    total: int
    reserved: int

    @property
    def available(self) -> int:
        # Never below 0: on the real chain the total is the chain's, which others may
        # spend from while the engine's orders still hold more.
        return max(self.total - self.reserved, 0)


@dataclass(frozen=True)
class WalletView:
    owner: str
    address: str
    balances: list[Balance]
