"""The simulated wallet: its keypair (fixed, so its address survives restarts) and its
balances, funded with the genesis amounts on first start."""

from __future__ import annotations

from decimal import Decimal

from core.formatting import to_base_units
from market.storage import BalanceStore
from market.tokens import decimals_of
from market.transactions import WALLET

GENESIS_WALLET = {"SOL": Decimal(10_000), "USDC": Decimal(10_000_000), "USDT": Decimal(10_000_000)}


class Wallet:
    def __init__(self, balances: BalanceStore) -> None:
        self._balances = balances

    @property
    def address(self) -> str:
        return str(WALLET.pubkey())

    async def ensure_genesis(self) -> None:
        await self._balances.ensure(
            {symbol: to_base_units(amount, decimals_of(symbol)) for symbol, amount in GENESIS_WALLET.items()}
        )

    async def balances(self) -> dict[str, int]:
        """Token → base units."""
        return await self._balances.all()

    async def fund(self, token: str, units: int) -> int:
        """Add `units` of `token`; returns the new balance."""
        return await self._balances.add(token, units)
