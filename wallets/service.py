"""`Wallets`, the money service: what placement, the chain and GET /wallet call. An
owner's wallet is made at its first use (a keypair, and the genesis balances the
market it trades on hands out); it opens its own sessions, except `ensure`, which joins
the placement's transaction."""

from __future__ import annotations

from solders.keypair import Keypair
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wallets import repository
from wallets.schemas import Balance, WalletView


class Wallets:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], genesis: dict[str, int]) -> None:
        """`genesis`: base units per token a new wallet starts with (the simulated
        market's airdrop; empty for none)."""
        self._sessions, self._genesis = sessions, dict(genesis)
        # Wallets are never deleted: once seen, an owner's keypair and address are known
        # for good, and its wallet needs no "make it if missing" again.
        self._keypairs: dict[str, Keypair] = {}
        self._owners_by_address: dict[str, str] = {}
        self._existing: set[str] = set()

    async def ensure(self, session: AsyncSession, owner: str) -> None:
        """Within the caller's transaction: the owner's wallet exists (made and funded now
        if this is its first use). Call `exists` once that transaction has committed."""
        if owner not in self._existing:
            await repository.create(session, owner, self._genesis)

    def exists(self, owner: str) -> None:
        """The owner's wallet is committed (a transaction that made it has ended)."""
        self._existing.add(owner)

    async def _made(self, owner: str) -> None:
        if owner not in self._existing:
            async with self._sessions() as session, session.begin():
                await self.ensure(session, owner)
            self.exists(owner)

    async def view(self, owner: str) -> WalletView:
        await self._made(owner)
        async with self._sessions() as session:
            wallet = await repository.get(session, owner)
            assert wallet is not None
            rows = await repository.balances(session, owner)
        return WalletView(
            owner, wallet.address, [Balance(b.token, int(b.total), int(b.reserved)) for b in rows]
        )

    async def keypair(self, owner: str) -> Keypair:
        if owner not in self._keypairs:
            await self._made(owner)
            async with self._sessions() as session:
                wallet = await repository.get(session, owner)
            assert wallet is not None
            self._keypairs[owner] = Keypair.from_seed(bytes.fromhex(wallet.seed))
        return self._keypairs[owner]

    async def owner_of(self, address: str) -> str | None:
        """Whose wallet `address` is (None: nobody's)."""
        if address not in self._owners_by_address:
            async with self._sessions() as session:
                wallet = await repository.by_address(session, address)
            if wallet is None:
                return None
            self._owners_by_address[address] = wallet.owner
        return self._owners_by_address[address]

    async def balances(self, owner: str) -> list[Balance]:
        """The owner's balances as they are (none if it has no wallet yet)."""
        async with self._sessions() as session:
            rows = await repository.balances(session, owner)
        return [Balance(b.token, int(b.total), int(b.reserved)) for b in rows]

    async def owner_of_order(self, order_id: str) -> str | None:
        async with self._sessions() as session:
            return await repository.owner_of_order(session, order_id)

    async def fund(self, owner: str, token: str, units: int) -> Balance:
        """Add `units` of `token` to the owner's wallet, in a transaction of its own; the
        balance after."""
        await self._made(owner)
        async with self._sessions() as session, session.begin():
            row = await repository.top_up(session, owner, token, units)
            return Balance(token, int(row.total), int(row.reserved))

    async def release(self, order_id: str) -> bool:
        """Give back, in a transaction of its own, what an order that ended without
        executing had reserved; False when nothing was held."""
        async with self._sessions() as session, session.begin():
            return await repository.release(session, order_id)
