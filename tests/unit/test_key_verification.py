"""Verifying a key: a live key costs no query; a suspect caller's forged keys cost no
query each (the live keys are read again, at most twice a second); a revoked key stops
working within KEY_CACHE_TTL_S."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounts import repository
from accounts.keys import Principal, generate_key, hash_key, key_id
from accounts.service import KEY_CACHE_TTL_S, SUSPECT_RELOAD_EVERY_S, ApiKeys

SECRET = "unit-test-secret"


class FakeKeyTable:
    """The api_keys table, and how often it was asked."""

    def __init__(self) -> None:
        self.live: dict[str, Principal] = {}
        self.reads = 0  # of every live key
        self.lookups = 0  # of one key

    def add(self, key: str, operator: bool = False) -> None:
        self.live[hash_key(key, SECRET)] = Principal(key_id(key), "owner", operator)

    def revoke(self, key: str) -> None:
        del self.live[hash_key(key, SECRET)]


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> FakeKeyTable:
    table = FakeKeyTable()

    async def live_principals(_: Any) -> dict[str, Principal]:
        table.reads += 1
        return dict(table.live)

    async def find_principal(_: Any, digest: str) -> Principal | None:
        table.lookups += 1
        return table.live.get(digest)

    monkeypatch.setattr(repository, "live_principals", live_principals)
    monkeypatch.setattr(repository, "find_principal", find_principal)
    return table


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def no_session() -> AsyncIterator[None]:
    yield None


def api_keys(clock: Clock) -> ApiKeys:
    return ApiKeys(cast(async_sessionmaker[AsyncSession], no_session), SECRET, clock)


async def test_a_suspect_callers_forged_keys_cost_no_query_each_and_valid_keys_pass(
    table: FakeKeyTable,
) -> None:
    valid = generate_key()
    table.add(valid)
    clock = Clock()
    keys = api_keys(clock)
    for _ in range(1000):
        assert await keys.verify(generate_key(), suspect=True) is None
    assert (table.reads, table.lookups) == (1, 0)  # the first read of every live key, nothing more
    assert await keys.verify(valid, suspect=True) is not None
    created_meanwhile = generate_key()
    table.add(created_meanwhile)
    clock.now += SUSPECT_RELOAD_EVERY_S
    assert await keys.verify(created_meanwhile, suspect=True) is not None
    assert (table.reads, table.lookups) == (2, 0)


async def test_a_revoked_key_stops_working_within_the_cache_ttl(table: FakeKeyTable) -> None:
    key = generate_key()
    table.add(key)
    clock = Clock()
    keys = api_keys(clock)
    assert await keys.verify(key) is not None
    table.revoke(key)
    clock.now += KEY_CACHE_TTL_S
    assert await keys.verify(key) is None


async def test_an_unknown_key_is_looked_up_once_while_remembered(table: FakeKeyTable) -> None:
    keys = api_keys(Clock())
    unknown = generate_key()
    for _ in range(10):
        assert await keys.verify(unknown) is None
    assert table.lookups == 1
