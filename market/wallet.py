"""Owners' simulated wallets: a keypair made at first use and funded with the genesis
amounts (unless ORDER_ENGINE_SIM_GENESIS_FUNDS=false), balances with what open orders
have reserved, and top-ups."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from solders.keypair import Keypair
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.formatting import to_base_units
from market.storage import WalletStore
from market.tokens import decimals_of

GENESIS_WALLET = {"SOL": Decimal(10_000), "USDC": Decimal(10_000_000), "USDT": Decimal(10_000_000)}


@dataclass(frozen=True)
class Balance:
    token: str
    total: int
    reserved: int

    @property
    def available(self) -> int:
        return self.total - self.reserved


@dataclass(frozen=True)
class WalletView:
    owner: str
    address: str
    balances: list[Balance]


class Wallets:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], store: WalletStore, genesis_funds: bool
    ) -> None:
        self._sessions, self.store = sessions, store
        # Wallets are never deleted: once seen, an owner's keypair and address are known
        # for good, and its wallet needs no "make it if missing" again.
        self._keypairs: dict[str, Keypair] = {}
        self._owners_by_address: dict[str, str] = {}
        self._existing: set[str] = set()
        self._genesis = (
            {symbol: to_base_units(amount, decimals_of(symbol)) for symbol, amount in GENESIS_WALLET.items()}
            if genesis_funds
            else {}
        )

    async def ensure_in(self, session: AsyncSession, owner: str) -> None:
        """Within the caller's transaction: the owner's wallet exists (made and funded now
        if this is its first use)."""
        if owner not in self._existing:
            await WalletStore.create(session, owner, self._genesis)

    def exists(self, owner: str) -> None:
        """The owner's wallet is committed (a transaction that made it has ended)."""
        self._existing.add(owner)

    async def ensure(self, owner: str) -> None:
        if owner not in self._existing:
            async with self._sessions() as session, session.begin():
                await self.ensure_in(session, owner)
            self._existing.add(owner)

    async def view(self, owner: str) -> WalletView:
        await self.ensure(owner)
        wallet = await self.store.get(owner)
        assert wallet is not None
        balances = [Balance(b.token, int(b.total), int(b.reserved)) for b in await self.store.balances(owner)]
        return WalletView(owner, wallet.address, balances)

    async def keypair(self, owner: str) -> Keypair:
        if owner not in self._keypairs:
            await self.ensure(owner)
            wallet = await self.store.get(owner)
            assert wallet is not None
            self._keypairs[owner] = Keypair.from_seed(bytes.fromhex(wallet.seed))
        return self._keypairs[owner]

    async def owner_of(self, address: str) -> str | None:
        """Whose wallet `address` is (None: nobody's)."""
        if address not in self._owners_by_address:
            wallet = await self.store.by_address(address)
            if wallet is None:
                return None
            self._owners_by_address[address] = wallet.owner
        return self._owners_by_address[address]

    async def fund(self, owner: str, token: str, units: int) -> Balance:
        """Add `units` of `token` to the owner's wallet; the balance after."""
        await self.ensure(owner)
        row = await self.store.add(owner, token, units)
        return Balance(token, int(row.total), int(row.reserved))
