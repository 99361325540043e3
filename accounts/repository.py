"""API keys in PostgreSQL: insert, find by hash, list, revoke. The caller owns the
transaction."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from accounts.keys import Principal, generate_key, hash_key, key_id
from storage.models import ApiKey, utcnow


async def create_key(
    session: AsyncSession, name: str, operator: bool, secret: str, key: str | None = None
) -> tuple[str, ApiKey]:
    key = key or generate_key()
    row = ApiKey(id=key_id(key), key_hash=hash_key(key, secret), name=name, operator=operator)
    session.add(row)
    await session.flush()
    return key, row


async def find_principal(session: AsyncSession, key_hash: str) -> Principal | None:
    """The live key whose HMAC is `key_hash`, or None (unknown or revoked)."""
    row = (await session.execute(select(ApiKey).where(col(ApiKey.key_hash) == key_hash))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return Principal(key_id=row.id, owner=row.name, operator=row.operator)


async def live_principals(session: AsyncSession) -> dict[str, Principal]:
    """Every live key's principal, by its HMAC."""
    rows = await session.execute(
        select(col(ApiKey.key_hash), col(ApiKey.id), col(ApiKey.name), col(ApiKey.operator)).where(
            col(ApiKey.revoked_at).is_(None)
        )
    )
    return {
        digest: Principal(key_id=id_, owner=name, operator=operator) for digest, id_, name, operator in rows
    }


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.execute(select(ApiKey).order_by(col(ApiKey.created_at)))).scalars())


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    """Revoke the key (idempotent); None when there is no such key."""
    row = await session.get(ApiKey, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.execute(
            update(ApiKey).where(col(ApiKey.id) == key_id).values(revoked_at=row.revoked_at)
        )
    return row
