"""`Wallets`, the money service: what placement, the chain and GET /wallet call. It
opens its own sessions, except `ensure` and `refresh`, which join the placement's
transaction.

Two kinds of wallet. On the simulated market an owner's wallet is made at its first use
(a keypair, and the genesis balances the market hands out). On the real chain (built
with a `ChainBalances`) an owner signs with its own keypair, which an operator imports
or creates (`hold`) and the service keeps sealed (wallets/custody.py); nothing is made
at first use (NoWallet), balances are the chain's, and the engine keeps only what its
own orders hold."""

from __future__ import annotations

from solders.keypair import Keypair
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import WalletCustody
from wallets import repository
from wallets.custody import ChainBalances, KeypairSeal, OnChain
from wallets.errors import NoWallet, SealBroken, WalletExists
from wallets.repository import Wallet
from wallets.schemas import Balance, Hold, WalletView


class Wallets:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        genesis: dict[str, int],
        seal: KeypairSeal | None = None,
        chain: ChainBalances | None = None,
    ) -> None:
        """`genesis`: base units per token a new simulated wallet starts with (the
        simulated market's airdrop; empty for none). `seal`: opens (and, for `hold`,
        seals) owners' own keypairs. `chain`: the real chain's balances; given, wallets
        are owners' own keypairs only (the real chain's mode), and `seal` is needed."""
        if chain is not None and seal is None:
            raise ValueError("wallets on the real chain need the keypair seal (ORDER_ENGINE_WALLET_KEY)")
        self._sessions, self._genesis = sessions, dict(genesis)
        self._seal, self._chain = seal, chain
        # Wallets are never deleted: once seen, an owner's keypair and address are known
        # for good, and its wallet needs no "make it if missing" again. (Held keypairs are
        # not kept: opened for each signature, so no plain key stays in memory.)
        self._keypairs: dict[str, Keypair] = {}
        self._owners_by_address: dict[str, str] = {}
        self._existing: set[str] = set()

    def __repr__(self) -> str:
        return f"Wallets({'held keypairs on chain' if self._chain is not None else 'simulated'})"

    @property
    def on_chain(self) -> bool:
        """Owners' own keypairs and the chain's balances (the real chain), not the simulation's."""
        return self._chain is not None

    async def hold(self, owner: str, keypair: Keypair) -> str:
        """Keep the owner's own keypair, sealed: its wallet's address. WalletExists when
        the owner has a wallet (never replaced) or the keypair is another owner's."""
        if self._seal is None:
            raise ValueError("no keypair seal: ORDER_ENGINE_WALLET_KEY is needed to hold keypairs")
        address = str(keypair.pubkey())
        async with self._sessions() as session, session.begin():
            other = await repository.by_address(session, address)
            if other is not None and other.owner != owner:
                raise WalletExists(f"this keypair ({address}) is already {other.owner}'s wallet")
            existing = await repository.hold(session, owner, address, self._seal.seal(keypair))
        if existing is not None:
            kind = "a simulated wallet" if existing.custody is WalletCustody.SIMULATED else "a wallet"
            raise WalletExists(f"{owner} already has {kind} ({existing.address}); a wallet is never replaced")
        self._existing.add(owner)
        return address

    async def ensure(self, session: AsyncSession, owner: str) -> None:
        """Within the caller's transaction: the owner's wallet exists (a simulated one is
        made and funded now if this is its first use; on the real chain NoWallet). Call
        `exists` once that transaction has committed."""
        if owner in self._existing:
            return
        if self._chain is None:
            await repository.create(session, owner, self._genesis)
        else:
            _held(owner, await repository.get(session, owner))

    def exists(self, owner: str) -> None:
        """The owner's wallet is committed (a transaction that made it has ended)."""
        self._existing.add(owner)

    async def read_chain(self, owner: str) -> OnChain | None:
        """Before a placement's transaction: the owner's balances on chain now (None on
        the simulated market, whose balances are the database's); NoWallet when the
        owner has none."""
        if self._chain is None:
            return None
        address = await self._address(owner)
        return OnChain(owner, await self._chain.balances(address))

    async def refresh(self, session: AsyncSession, on_chain: OnChain | None, hold: Hold) -> None:
        """Within the placement's transaction, just before it reserves `hold`: the
        totals of the tokens it needs become what `read_chain` saw (never below what
        stays reserved), so the reservation fits in what the chain holds now less what
        the engine's open orders hold."""
        if on_chain is None:
            return
        needed = {hold.token} | ({"SOL"} if hold.fee_lamports > 0 else set())
        await repository.refresh_totals(
            session, on_chain.owner, {token: on_chain.balances.get(token, 0) for token in needed}
        )

    async def _made(self, owner: str) -> None:
        if owner not in self._existing:
            async with self._sessions() as session, session.begin():
                await self.ensure(session, owner)
            self.exists(owner)

    async def _address(self, owner: str) -> str:
        async with self._sessions() as session:
            wallet = await repository.get(session, owner)
        return _held(owner, wallet).address

    async def view(self, owner: str) -> WalletView:
        if self._chain is not None:
            return await self._view_on_chain(owner)
        await self._made(owner)
        async with self._sessions() as session:
            wallet = await repository.get(session, owner)
            assert wallet is not None
            rows = await repository.balances(session, owner)
        return WalletView(
            owner, wallet.address, [Balance(b.token, int(b.total), int(b.reserved)) for b in rows]
        )

    async def _view_on_chain(self, owner: str) -> WalletView:
        """The address, and per token what the chain holds (total), what the engine's
        open orders hold (reserved) and what is left (available, never below 0: others
        may have spent from the address meanwhile)."""
        assert self._chain is not None
        address = await self._address(owner)
        on_chain = await self._chain.balances(address)
        async with self._sessions() as session:
            held = await repository.held_by_token(session, owner)
        return WalletView(
            owner,
            address,
            [
                Balance(token, on_chain.get(token, 0), held.get(token, 0))
                for token in sorted({*on_chain, *held})
            ],
        )

    async def keypair(self, owner: str) -> Keypair:
        """The keypair that signs for the owner: a simulated wallet's (made at first use),
        or the owner's own, opened from its seal now (only the worker's signer asks)."""
        if owner in self._keypairs:
            return self._keypairs[owner]
        if self._chain is None:
            await self._made(owner)
        async with self._sessions() as session:
            wallet = await repository.get(session, owner)
        if self._chain is not None:
            wallet = _held(owner, wallet)
        if wallet is None:
            raise NoWallet(owner)
        if wallet.custody is WalletCustody.SIMULATED:
            self._keypairs[owner] = Keypair.from_seed(bytes.fromhex(wallet.seed))
            return self._keypairs[owner]
        if self._seal is None or wallet.sealed_keypair is None:
            raise SealBroken(f"{owner}'s keypair is sealed and ORDER_ENGINE_WALLET_KEY is not set")
        keypair = self._seal.open(wallet.sealed_keypair)
        if str(keypair.pubkey()) != wallet.address:  # a token swapped between rows
            raise SealBroken(f"{owner}'s sealed keypair is not the keypair of its address")
        return keypair

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


def _held(owner: str, wallet: Wallet | None) -> Wallet:
    """On the real chain: the owner's held wallet. A simulated one (the same database
    used by the simulation before) has a keypair nobody funded on chain: it must never
    sign there, so it counts as none."""
    if wallet is None or wallet.custody is not WalletCustody.HELD:
        raise NoWallet(owner)
    return wallet
