"""The schema's migrations on a database with data in it: the single wallet of earlier
versions becomes the local operator's, with the address it always had."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from solders.keypair import Keypair

from devstack import InfraUrls
from migrations import run_migrations


@pytest.fixture
def empty_database(infra: InfraUrls) -> Iterator[str]:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    admin = infra.database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run(f"CREATE DATABASE {name}"))
    try:
        yield infra.database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f"DROP DATABASE {name} WITH (FORCE)"))


def test_the_single_wallet_becomes_the_local_operators(empty_database: str) -> None:
    run_migrations(empty_database, "0002")  # the schema before wallets were per owner

    async def fill_then_read(step: str) -> list[tuple[str, ...]]:
        connection = await asyncpg.connect(empty_database.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            if step == "fill":
                await connection.execute(
                    "INSERT INTO wallet_balances (token, amount) VALUES ('SOL', 8999000000000), ('USDC', 12345)"
                )
                return []
            rows = await connection.fetch(
                "SELECT w.owner, w.address, b.token, b.total::text, b.reserved::text FROM wallets w "
                "JOIN wallet_balances b USING (owner) ORDER BY b.token"
            )
            return [tuple(row) for row in rows]
        finally:
            await connection.close()

    asyncio.run(fill_then_read("fill"))
    run_migrations(empty_database)
    legacy = str(Keypair.from_seed(hashlib.sha256(b"order-engine simulated wallet").digest()).pubkey())
    assert asyncio.run(fill_then_read("read")) == [
        ("local", legacy, "SOL", "8999000000000", "0"),
        ("local", legacy, "USDC", "12345", "0"),
    ]
