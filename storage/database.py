"""The async SQLAlchemy engine and session factory (one per process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# A PostgreSQL that hangs (stopped, partitioned) fails a request within seconds: a
# connection is waited for at most POOL_TIMEOUT_S, made in CONNECT_TIMEOUT_S, and any one
# statement may take COMMAND_TIMEOUT_S.
log = logging.getLogger(__name__)
T = TypeVar("T")

POOL_TIMEOUT_S = 5
CONNECT_TIMEOUT_S = 5
COMMAND_TIMEOUT_S = 10
STARTUP_PATIENCE_S = 120


def create_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
    )
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


async def when_reachable(
    step: Callable[[], Awaitable[T]], what: str, give_up_after_s: float = STARTUP_PATIENCE_S
) -> T:
    """Run a start-up step, trying again while PostgreSQL is unreachable (restarting, or
    not up yet): a process started a moment too early waits rather than dies."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + give_up_after_s, 0.5
    while True:
        try:
            return await step()
        except (OSError, TimeoutError, DBAPIError, PoolTimeout) as error:
            if loop.time() > deadline:
                raise
            log.warning("%s: PostgreSQL unreachable (%s); trying again", what, error)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
