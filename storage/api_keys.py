"""API keys in PostgreSQL: create, find by hash, list, revoke."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from core import api_keys
from core.api_keys import Principal
from storage.models import ApiKey, utcnow


class UnknownKey(LookupError):
    pass


async def create_key(
    session: AsyncSession, name: str, operator: bool, secret: str, key: str | None = None
) -> tuple[str, ApiKey]:
    """A new key for `name` (who owns what it places); the key itself is returned once
    and never stored."""
    if not api_keys.NAME_PATTERN.match(name):
        raise ValueError("a key name is 1–64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
    key = key or api_keys.generate_key()
    row = ApiKey(
        id=api_keys.key_id(key),
        key_hash=api_keys.hash_key(key, secret),
        name=name,
        operator=operator,
    )
    session.add(row)
    await session.commit()
    return key, row


async def find_principal(session: AsyncSession, key_hash: str) -> Principal | None:
    """The live key whose HMAC is `key_hash`, or None (unknown or revoked)."""
    row = (await session.execute(select(ApiKey).where(col(ApiKey.key_hash) == key_hash))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return Principal(key_id=row.id, owner=row.name, operator=row.operator)


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.execute(select(ApiKey).order_by(col(ApiKey.created_at)))).scalars())


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise UnknownKey(key_id)
    if row.revoked_at is None:
        await session.execute(update(ApiKey).where(col(ApiKey.id) == key_id).values(revoked_at=utcnow()))
        await session.commit()
        await session.refresh(row)
    return row
