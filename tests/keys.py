"""The API keys every test uses: two ordinary owners and an operator, created once per
database (their HMACs under TEST_KEY_SECRET)."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError

from accounts.keys import generate_key
from accounts.service import ApiKeys
from storage.database import create_engine, create_sessionmaker

TEST_KEY_SECRET = "order-engine-tests"
# For engine processes: they check keys under the secret the test keys were stored with.
KEY_SECRET_ENV = {"ORDER_ENGINE_API_KEY_SECRET": TEST_KEY_SECRET}
ALICE = generate_key()
BOB = generate_key()
OPERATOR = generate_key()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_test_key(
    database_url: str, name: str, operator: bool = False, key: str | None = None
) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        created, _ = await ApiKeys(create_sessionmaker(engine), TEST_KEY_SECRET).create(
            name, operator, key=key
        )
        return created
    finally:
        await engine.dispose()


async def revoke_test_key(database_url: str, key_id: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        await ApiKeys(create_sessionmaker(engine), TEST_KEY_SECRET).revoke(key_id)
    finally:
        await engine.dispose()


def install_test_keys(database_url: str) -> None:
    async def install() -> None:
        for name, key, operator in (("alice", ALICE, False), ("bob", BOB, False), ("ops", OPERATOR, True)):
            try:
                await create_test_key(database_url, name, operator, key)
            except IntegrityError:  # already there (a second stack on one database)
                pass

    asyncio.run(install())
