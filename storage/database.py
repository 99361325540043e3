"""The async SQLAlchemy engine and session factory (one per process)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size)
    # A restarted PostgreSQL costs one fresh connection, not an error. Not pool_pre_ping:
    # its ping is two round trips per checkout, more than many of our transactions take.
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection whose server went away was closed by asyncpg as soon as the
    server said so (it reads every idle socket); the pool then connects anew."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
