"""The market's state in PostgreSQL, so every API and worker process sees one market:
pools, wallet balances and the chain's executed transactions. Only SQL lives here;
venues, the chain and the wallet (their own modules) decide what to read and write."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from solders.keypair import Keypair
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from contracts.landing import Fees, LandingReport
from core.domain import ReservationState
from core.formatting import format_amount, to_base_units
from market.errors import MarketError, MarketErrorCode
from market.pools import Pool, SwapResult, genesis_pools, pool_from_state
from market.tokens import decimals_of, find_token
from storage.models import (
    ChainTransaction,
    FailedTransaction,
    MarketPool,
    Order,
    Reservation,
    Wallet,
    WalletBalance,
    utcnow,
)


class PoolStore:
    """Every pool's state, one JSON row per pool; a trade locks the rows it changes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._known_pairs: frozenset[frozenset[str]] | None = None
        self._parsed: dict[str, tuple[datetime, Pool]] = {}  # pool id -> (updated_at, pool)

    async def ensure_genesis(self) -> None:
        """Create the genesis pools on first start; never overwrite market state."""
        async with self._sessions() as session, session.begin():
            for pool in genesis_pools():
                await session.execute(_insert_new(pool))

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        """Every pool, or the pools that trade the pair (token_a, token_b), as they are
        now. Only the rows changed since this process last read them are read and parsed
        again (a DLMM pool's state is hundreds of bins; most pools do not trade between
        two reads)."""
        stamps = select(col(MarketPool.pool_id), col(MarketPool.updated_at)).order_by(col(MarketPool.pool_id))
        if token_a is not None and token_b is not None:
            stamps = stamps.where(col(MarketPool.pair).in_([f"{token_a}/{token_b}", f"{token_b}/{token_a}"]))
        async with self._sessions() as session:
            current = (await session.execute(stamps)).all()
            stale = [pool_id for pool_id, at in current if self._parsed.get(pool_id, (None, None))[0] != at]
            if stale:
                rows = await session.execute(
                    select(col(MarketPool.pool_id), col(MarketPool.updated_at), col(MarketPool.state)).where(
                        col(MarketPool.pool_id).in_(stale)
                    )
                )
                for pool_id, at, state in rows:
                    self._parsed[pool_id] = (at, pool_from_state(state))
        return [self._parsed[pool_id][1] for pool_id, _ in current if pool_id in self._parsed]

    async def get(self, pool_id: str) -> Pool:
        async with self._sessions() as session:
            row = await session.get(MarketPool, pool_id)
        if row is None:
            raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"no pool {pool_id}")
        return pool_from_state(row.state)

    async def ids(self) -> list[str]:
        async with self._sessions() as session:
            rows = await session.execute(select(col(MarketPool.pool_id)).order_by(col(MarketPool.pool_id)))
            return list(rows.scalars())

    async def pairs(self) -> frozenset[frozenset[str]]:
        """Every pair some pool trades; learns the tokens listed since this process started."""
        async with self._sessions() as session:
            rows = await session.execute(select(col(MarketPool.pair)).distinct())
            pairs = frozenset(frozenset(pair.split("/")) for pair in rows.scalars())
        if any(find_token(symbol) is None for pair in pairs for symbol in pair):
            await self.all()  # reading a pool registers the tokens it lists
        self._known_pairs = pairs
        return pairs

    def known_pairs(self) -> frozenset[frozenset[str]] | None:
        """The pairs as of the last pairs() call (None before the first): pools only
        ever open, so what is listed here still trades."""
        return self._known_pairs

    async def learn_tokens(self, *symbols: str) -> None:
        """A token listed at run time is known once its pool has been read in this process."""
        if any(find_token(symbol) is None for symbol in symbols):
            await self.all()

    async def trade(self, pool_id: str, decide: Callable[[Pool], tuple[str, int]], now: float) -> SwapResult:
        """Someone else's swap against one pool (background trading, /sim/price).
        `decide` sees the pool as it is, under lock, and names the token and amount in."""
        async with self._sessions() as session, session.begin():
            row = await session.get(MarketPool, pool_id, with_for_update=True)
            if row is None:
                raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"no pool {pool_id}")
            token_in, amount_in = decide(pool_from_state(row.state))
            result, after = pool_from_state(row.state).swap(token_in, amount_in, now)
            row.state = after.to_state()
            row.updated_at = utcnow()
        return result

    async def add(self, pool: Pool) -> bool:
        """Add a new pool (a token listed later); False if that pool already exists."""
        async with self._sessions() as session, session.begin():
            inserted = await session.execute(_insert_new(pool).returning(col(MarketPool.pool_id)))
            return inserted.first() is not None

    @staticmethod
    async def lock_pools(
        session: AsyncSession, legs: set[tuple[str, str, str]]
    ) -> dict[str, tuple[MarketPool, Pool]]:
        """The pools of `legs` ((dex, token, token) each), locked in pool-id order (no
        deadlocks), by "dex:A/B" with the pair sorted."""
        wanted = {f"{dex}:{'/'.join(sorted((a, b)))}" for dex, a, b in legs}
        pairs = {f"{a}/{b}" for _, a, b in legs} | {f"{b}/{a}" for _, a, b in legs}
        rows = (
            await session.execute(
                select(MarketPool)
                .where(col(MarketPool.pair).in_(pairs), col(MarketPool.dex).in_({dex for dex, _, _ in legs}))
                .order_by(col(MarketPool.pool_id))
                .with_for_update()
            )
        ).scalars()
        locked = {}
        for row in rows:
            pool = pool_from_state(row.state)
            key = f"{pool.dex}:{'/'.join(sorted((pool.base, pool.quote)))}"
            if key in wanted:
                locked[key] = (row, pool)
        return locked


@dataclass(frozen=True)
class Hold:
    """What one order may spend: `amount` of `token`, and up to `fee_lamports` of SOL."""

    owner: str
    token: str
    amount: int
    fee_lamports: int = 0


class InsufficientFunds(Exception):
    def __init__(self, token: str, needed: int, available: int) -> None:
        super().__init__(f"{token}: needs {needed}, {available} available")
        self.token, self.needed, self.available = token, needed, available


class WalletStore:
    """Owners' wallets: keypairs, balances (total and reserved) and each order's
    reservation. Functions taking a session join the caller's transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @staticmethod
    async def create(session: AsyncSession, owner: str, genesis: dict[str, int]) -> bool:
        """The owner's wallet with a fresh keypair and the genesis balances, unless it
        exists; True when made now."""
        seed = secrets.token_bytes(32)
        made = await session.execute(
            insert(Wallet)
            .values(
                owner=owner,
                address=str(Keypair.from_seed(seed).pubkey()),
                seed=seed.hex(),
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
            .returning(col(Wallet.owner))
        )
        if made.first() is None:
            return False
        for token, units in genesis.items():
            await session.execute(
                insert(WalletBalance).values(owner=owner, token=token, total=units, reserved=0)
            )
        return True

    @staticmethod
    async def lock(session: AsyncSession, owner: str) -> Wallet:
        """The owner's wallet row, locked until the transaction ends: one placement of an
        owner at a time, across every API process."""
        wallet = await session.get(Wallet, owner, with_for_update=True)
        assert wallet is not None, f"no wallet for {owner}"
        return wallet

    async def get(self, owner: str) -> Wallet | None:
        async with self._sessions() as session:
            return await session.get(Wallet, owner)

    async def by_address(self, address: str) -> Wallet | None:
        async with self._sessions() as session:
            return (
                await session.execute(select(Wallet).where(col(Wallet.address) == address))
            ).scalar_one_or_none()

    async def balances(self, owner: str) -> list[WalletBalance]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(WalletBalance)
                .where(col(WalletBalance.owner) == owner)
                .order_by(col(WalletBalance.token))
            )
            return list(rows.scalars())

    async def add(self, owner: str, token: str, units: int) -> WalletBalance:
        """Add `units` to the owner's `token` (a top-up), in a transaction of its own."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(WalletBalance)
                .values(owner=owner, token=token, total=units, reserved=0)
                .on_conflict_do_update(
                    index_elements=["owner", "token"],
                    set_={"total": WalletBalance.__table__.c.total + units},  # type: ignore[attr-defined]
                )
            )
            row = await session.get(WalletBalance, (owner, token))
            assert row is not None
            return row

    @staticmethod
    async def reserve(session: AsyncSession, order_id: str, hold: Hold) -> None:
        """Reserve what the order may spend, in the caller's transaction. One conditional
        statement per token, so no interleaving of requests or processes can promise the
        same base unit twice; InsufficientFunds when it does not fit in `available`."""
        needs: dict[str, int] = {}
        for token, units in ((hold.token, hold.amount), ("SOL", hold.fee_lamports)):
            if units > 0:
                needs[token] = needs.get(token, 0) + units
        # The reservation row first, then the balances' conditional updates: a balance row
        # stays locked from its update to the commit, so the update comes last.
        session.add(
            Reservation(
                order_id=order_id,
                owner=hold.owner,
                token=hold.token,
                amount=Decimal(hold.amount),
                fee_lamports=Decimal(hold.fee_lamports),
                state=ReservationState.HELD,
            )
        )
        await session.flush()
        for token, units in sorted(needs.items()):
            reserved = await session.execute(
                update(WalletBalance)
                .where(
                    col(WalletBalance.owner) == hold.owner,
                    col(WalletBalance.token) == token,
                    col(WalletBalance.total) - col(WalletBalance.reserved) >= units,
                )
                .values(reserved=col(WalletBalance.reserved) + units)
                .returning(col(WalletBalance.token))
            )
            if reserved.first() is None:
                row = await session.get(WalletBalance, (hold.owner, token))
                available = int(row.total - row.reserved) if row is not None else 0
                raise InsufficientFunds(token, units, available)

    async def release(self, order_id: str) -> bool:
        """Give back what an order that ended without executing had reserved; idempotent
        (False when nothing was held)."""
        async with self._sessions() as session, session.begin():
            return await self.release_in(session, order_id)

    @staticmethod
    async def release_in(session: AsyncSession, order_id: str) -> bool:
        held = (
            await session.execute(
                select(Reservation)
                .where(col(Reservation.order_id) == order_id, col(Reservation.state) == ReservationState.HELD)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if held is None:
            return False
        for token, units in _held_by_token(held).items():
            await session.execute(
                update(WalletBalance)
                .where(col(WalletBalance.owner) == held.owner, col(WalletBalance.token) == token)
                .values(reserved=col(WalletBalance.reserved) - units)
            )
        held.state, held.closed_at = ReservationState.RELEASED, utcnow()
        return True

    @classmethod
    async def hold_again(cls, session: AsyncSession, order_id: str) -> bool:
        """Reserve again what a released reservation held (an operator re-drives a failed
        order); InsufficientFunds when it no longer fits. Nothing to do (False) when it is
        held."""
        held = await cls.reservation(session, order_id, lock=True)
        if held is None or held.state is not ReservationState.RELEASED:
            return False
        await session.delete(held)
        await session.flush()
        await cls.reserve(
            session, order_id, Hold(held.owner, held.token, int(held.amount), int(held.fee_lamports))
        )
        return True

    @classmethod
    async def forget_in(cls, session: AsyncSession, order_id: str) -> None:
        """Release and delete an order's reservation (its order is being deleted)."""
        await cls.release_in(session, order_id)
        held = await cls.reservation(session, order_id)
        if held is not None:
            await session.delete(held)
            await session.flush()

    @staticmethod
    async def reservation(session: AsyncSession, order_id: str, lock: bool = False) -> Reservation | None:
        query = select(Reservation).where(col(Reservation.order_id) == order_id)
        return (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()

    @staticmethod
    async def move(session: AsyncSession, owner: str, deltas: dict[str, tuple[int, int]]) -> None:
        """Within a landing: per token, add (Δtotal, Δreserved); rows locked in a fixed
        order. INSUFFICIENT_FUNDS when a total would fall below what stays reserved."""
        for token, (total_delta, reserved_delta) in sorted(deltas.items()):
            row = await session.get(WalletBalance, (owner, token), with_for_update=True)
            if row is None:
                row = WalletBalance(owner=owner, token=token, total=Decimal(0), reserved=Decimal(0))
                session.add(row)
            total, reserved = row.total + total_delta, row.reserved + reserved_delta
            if reserved < 0 or total < reserved:
                raise MarketError(
                    MarketErrorCode.INSUFFICIENT_FUNDS,
                    f"wallet holds {format_amount(int(row.total - row.reserved), decimals_of(token))} {token} available",
                )
            row.total, row.reserved = total, reserved

    async def owner_of_order(self, order_id: str) -> str | None:
        """Whose wallet an order trades from: its reservation's owner, or (orders placed
        before reservations) the order's."""
        async with self._sessions() as session:
            held = await self.reservation(session, order_id)
            if held is not None:
                return held.owner
            return await session.scalar(select(col(Order.owner)).where(col(Order.id) == order_id))


def _held_by_token(held: Reservation) -> dict[str, int]:
    units = {held.token: int(held.amount)}
    if fee_held(held):
        units["SOL"] = units.get("SOL", 0) + fee_held(held)
    return units


def fee_held(held: Reservation) -> int:
    """What is still reserved of the order's fee budget: the budget less the fees paid."""
    return max(int(held.fee_lamports) - int(held.fees_paid or 0), 0)


@dataclass(frozen=True)
class LandedLeg:
    dex: str
    amount_in: int
    amount_out: int
    min_amount_out: int
    pool: str | None = None  # its pool id (None: recorded before pools were named)
    token_in: str = ""  # "" for legs recorded before multi-hop: the transaction's pair
    token_out: str = ""
    hop: int = 0


@dataclass(frozen=True)
class Landed:
    """An executed transaction, as the chain recorded it (base units)."""

    tx_hash: str
    amount_in: int
    amount_out: int
    slot: int
    legs: tuple[LandedLeg, ...] = ()
    report: LandingReport | None = None  # None: landed before the fee market


class TransactionLedger:
    """Executed transactions: at most one per idempotency key, ever (a unique constraint)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def find(self, idempotency_key: str) -> Landed | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ChainTransaction).where(col(ChainTransaction.idempotency_key) == idempotency_key)
                )
            ).scalar_one_or_none()
        return None if row is None else landed_of(row)

    async def find_failed(self, signature: str) -> FailedTransaction | None:
        """The transaction, if it landed and failed (and paid for it)."""
        async with self._sessions() as session:
            return await session.get(FailedTransaction, signature)

    async def recent(self, *, owner: str | None, order_id: str | None, limit: int) -> list[ChainTransaction]:
        """Newest first; `owner` narrows to that owner's orders' transactions."""
        query = select(ChainTransaction).order_by(col(ChainTransaction.at).desc()).limit(limit)
        if owner is not None:
            mine = select(col(Order.id)).where(col(Order.owner) == owner)
            query = query.where(col(ChainTransaction.order_id).in_(mine))
        if order_id is not None:
            query = query.where(col(ChainTransaction.order_id) == order_id)
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())


def _insert_new(pool: Pool) -> Insert:
    """Insert a pool unless one with its id exists (never overwrite market state)."""
    return (
        insert(MarketPool)
        .values(
            pool_id=pool.pool_id, dex=pool.dex, pair=pool.pair, state=pool.to_state(), updated_at=utcnow()
        )
        .on_conflict_do_nothing()
    )


def landed_of(row: ChainTransaction) -> Landed:
    """The chain's record of a transaction, in base units. Legs recorded before they
    carried their outputs have none (amount_out and minimum 0)."""
    legs = tuple(
        LandedLeg(
            leg["dex"],
            to_base_units(Decimal(leg["amount_in"]), decimals_of(leg.get("token_in") or row.token_in)),
            to_base_units(
                Decimal(leg.get("amount_out", "0")), decimals_of(leg.get("token_out") or row.token_out)
            ),
            to_base_units(
                Decimal(leg.get("min_amount_out", "0")), decimals_of(leg.get("token_out") or row.token_out)
            ),
            leg.get("pool"),
            leg.get("token_in", ""),
            leg.get("token_out", ""),
            leg.get("hop", 0),
        )
        for leg in row.legs
    )
    return Landed(
        row.tx_hash,
        to_base_units(row.amount_in, decimals_of(row.token_in)),
        to_base_units(row.amount_out, decimals_of(row.token_out)),
        row.slot,
        legs,
        report_of(row.landing) if row.landing else None,
    )


def report_json(report: LandingReport) -> dict[str, Any]:
    return asdict(report)


def report_of(data: dict[str, Any]) -> LandingReport:
    return LandingReport(**{**data, "fees": Fees(**data["fees"])})
