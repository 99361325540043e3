"""The market's state in PostgreSQL, so every API and worker process sees one market:
pools, wallet balances and the chain's executed transactions. Only SQL lives here;
venues, the chain and the wallet (their own modules) decide what to read and write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from core.formatting import format_amount, to_base_units
from market.errors import MarketError, MarketErrorCode
from market.pools import Pool, SwapResult, genesis_pools, pool_from_state
from market.tokens import decimals_of, find_token
from storage.models import ChainTransaction, MarketPool, Order, WalletBalance, utcnow


class PoolStore:
    """Every pool's state, one JSON row per pool; a trade locks the rows it changes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._known_pairs: frozenset[frozenset[str]] | None = None

    async def ensure_genesis(self) -> None:
        """Create the genesis pools on first start; never overwrite market state."""
        async with self._sessions() as session, session.begin():
            for pool in genesis_pools():
                await session.execute(_insert_new(pool))

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        """Every pool, or the pools that trade the pair (token_a, token_b)."""
        query = select(MarketPool).order_by(col(MarketPool.pool_id))
        if token_a is not None and token_b is not None:
            query = query.where(col(MarketPool.pair).in_([f"{token_a}/{token_b}", f"{token_b}/{token_a}"]))
        async with self._sessions() as session:
            rows = await session.execute(query)
            return [pool_from_state(row.state) for row in rows.scalars()]

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
    async def lock_for_swap(
        session: AsyncSession, token_in: str, token_out: str, dexes: list[str]
    ) -> dict[str, tuple[MarketPool, Pool]]:
        """The pair's pools on `dexes`, locked in a fixed order (no deadlocks), by dex."""
        pairs = [f"{token_in}/{token_out}", f"{token_out}/{token_in}"]
        rows = (
            await session.execute(
                select(MarketPool)
                .where(col(MarketPool.pair).in_(pairs), col(MarketPool.dex).in_(dexes))
                .order_by(col(MarketPool.pool_id))
                .with_for_update()
            )
        ).scalars()
        return {row.dex: (row, pool_from_state(row.state)) for row in rows}


class BalanceStore:
    """The wallet's balances, in base units."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ensure(self, genesis: dict[str, int]) -> None:
        async with self._sessions() as session, session.begin():
            for symbol, units in genesis.items():
                await session.execute(
                    insert(WalletBalance).values(token=symbol, amount=units).on_conflict_do_nothing()
                )

    async def all(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(select(WalletBalance))
            return {row.token: int(row.amount) for row in rows.scalars()}

    async def add(self, token: str, units: int) -> int:
        """Add `units` (may be negative) in a transaction of its own; the new balance."""
        async with self._sessions() as session, session.begin():
            return await self.add_in(session, token, units)

    @staticmethod
    async def add_in(session: AsyncSession, token: str, delta: int) -> int:
        """Within the caller's transaction: lock the balance row and move it by `delta`;
        INSUFFICIENT_FUNDS when it would go below zero."""
        balance = await session.get(WalletBalance, token, with_for_update=True)
        if balance is None:
            balance = WalletBalance(token=token, amount=Decimal(0))
            session.add(balance)
        if balance.amount + delta < 0:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"wallet holds {format_amount(int(balance.amount), decimals_of(token))} {token}",
            )
        balance.amount += delta
        return int(balance.amount)


@dataclass(frozen=True)
class Landed:
    tx_hash: str
    amount_in: int
    amount_out: int
    slot: int


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
        if row is None:
            return None
        return Landed(
            row.tx_hash,
            to_base_units(row.amount_in, decimals_of(row.token_in)),
            to_base_units(row.amount_out, decimals_of(row.token_out)),
            row.slot,
        )

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
