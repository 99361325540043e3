"""Queries of quotes (POST /quotes): store one, read one, claim one for an order, delete
the long-expired unused ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Quote


async def insert(session: AsyncSession, quote: Quote) -> None:
    session.add(quote)
    await session.flush()


async def get(session: AsyncSession, quote_id: str) -> Quote | None:
    return await session.get(Quote, quote_id)


async def claim(session: AsyncSession, quote_id: str, owner: str, order_id: str, now: datetime) -> bool:
    """Mark the owner's quote used by `order_id`, in the caller's transaction: True only
    for the one request that finds it unused and unexpired (a conditional update)."""
    claimed = await session.execute(
        update(Quote)
        .where(
            col(Quote.id) == quote_id,
            col(Quote.owner) == owner,
            col(Quote.used_by).is_(None),
            col(Quote.expires_at) > now,
        )
        .values(used_by=order_id)
        .returning(col(Quote.id))
    )
    return claimed.first() is not None


async def delete_unused_expired(session: AsyncSession, expired_before: datetime, limit: int) -> int:
    """Delete up to `limit` quotes that no order used and that expired before
    `expired_before`; rows another purge holds are skipped, not waited for."""
    doomed = (
        select(col(Quote.id))
        .where(col(Quote.used_by).is_(None), col(Quote.expires_at) < expired_before)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(Quote).where(col(Quote.id).in_(doomed.scalar_subquery())))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
