"""Pool queries: one JSON row per pool. Every function takes the caller's session; a
trade and a landing lock the rows they change in their own transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from market.pools import Pool, pool_from_state
from storage.models import MarketPool, utcnow


def insert_new(pool: Pool) -> Insert:
    """Insert a pool unless one with its id exists (never overwrite market state)."""
    return (
        insert(MarketPool)
        .values(
            pool_id=pool.pool_id, dex=pool.dex, pair=pool.pair, state=pool.to_state(), updated_at=utcnow()
        )
        .on_conflict_do_nothing()
    )


async def add(session: AsyncSession, pool: Pool) -> bool:
    """Add a pool unless one with its id exists; True when added now."""
    inserted = await session.execute(insert_new(pool).returning(col(MarketPool.pool_id)))
    return inserted.first() is not None


async def stamps(
    session: AsyncSession, token_a: str | None = None, token_b: str | None = None
) -> Sequence[Row[str, datetime]]:
    """(pool id, updated_at) of every pool, or of those trading the pair, by pool id."""
    query = select(col(MarketPool.pool_id), col(MarketPool.updated_at)).order_by(col(MarketPool.pool_id))
    if token_a is not None and token_b is not None:
        query = query.where(col(MarketPool.pair).in_([f"{token_a}/{token_b}", f"{token_b}/{token_a}"]))
    return (await session.execute(query)).all()


async def states(
    session: AsyncSession, pool_ids: Iterable[str]
) -> Sequence[Row[str, datetime, dict[str, Any]]]:
    """(pool id, updated_at, state) of these pools."""
    rows = await session.execute(
        select(col(MarketPool.pool_id), col(MarketPool.updated_at), col(MarketPool.state)).where(
            col(MarketPool.pool_id).in_(list(pool_ids))
        )
    )
    return rows.all()


async def get(session: AsyncSession, pool_id: str, lock: bool = False) -> MarketPool | None:
    return await session.get(MarketPool, pool_id, with_for_update=lock)


async def ids(session: AsyncSession) -> list[str]:
    rows = await session.execute(select(col(MarketPool.pool_id)).order_by(col(MarketPool.pool_id)))
    return list(rows.scalars())


async def pairs(session: AsyncSession) -> list[str]:
    """Every pair some pool trades, as "A/B"."""
    rows = await session.execute(select(col(MarketPool.pair)).distinct())
    return list(rows.scalars())


async def lock_pools(
    session: AsyncSession, legs: set[tuple[str, str, str]]
) -> dict[str, tuple[MarketPool, Pool]]:
    """The pools of `legs` ((dex, token, token) each), locked in pool-id order (no
    deadlocks), by "dex:A/B" with the pair sorted."""
    wanted = {f"{dex}:{'/'.join(sorted((a, b)))}" for dex, a, b in legs}
    pair_names = {f"{a}/{b}" for _, a, b in legs} | {f"{b}/{a}" for _, a, b in legs}
    rows = (
        await session.execute(
            select(MarketPool)
            .where(col(MarketPool.pair).in_(pair_names), col(MarketPool.dex).in_({dex for dex, _, _ in legs}))
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
