"""`PoolStore`, the pools as every process sees them: it opens its own sessions and
keeps the parsed pools of this process, reading again only the rows changed since
(pool_repository.py has the queries)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from market import pool_repository
from market.errors import MarketError, MarketErrorCode
from market.pools import Pool, SwapResult, genesis_pools, pool_from_state
from market.tokens import find_token
from storage.models import utcnow


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
                await pool_repository.add(session, pool)

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        """Every pool, or the pools that trade the pair (token_a, token_b), as they are
        now. Only the rows changed since this process last read them are read and parsed
        again (a DLMM pool's state is hundreds of bins; most pools do not trade between
        two reads)."""
        async with self._sessions() as session:
            current = await pool_repository.stamps(session, token_a, token_b)
            stale = [pool_id for pool_id, at in current if self._parsed.get(pool_id, (None, None))[0] != at]
            if stale:
                for pool_id, at, state in await pool_repository.states(session, stale):
                    self._parsed[pool_id] = (at, pool_from_state(state))
        return [self._parsed[pool_id][1] for pool_id, _ in current if pool_id in self._parsed]

    async def get(self, pool_id: str) -> Pool:
        async with self._sessions() as session:
            row = await pool_repository.get(session, pool_id)
        if row is None:
            raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"no pool {pool_id}")
        return pool_from_state(row.state)

    async def ids(self) -> list[str]:
        async with self._sessions() as session:
            return await pool_repository.ids(session)

    async def pairs(self) -> frozenset[frozenset[str]]:
        """Every pair some pool trades; learns the tokens listed since this process started."""
        async with self._sessions() as session:
            pairs = frozenset(frozenset(pair.split("/")) for pair in await pool_repository.pairs(session))
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
            row = await pool_repository.get(session, pool_id, lock=True)
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
            return await pool_repository.add(session, pool)
