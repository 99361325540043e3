"""API keys as a service: create, list and revoke them (the CLI), verify one (every
request). One per process."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounts import repository
from accounts.keys import NAME_PATTERN, Principal, hash_key, is_well_formed
from core.errors import InvalidInput, NotFound
from storage.models import ApiKey

# A verified key is trusted this long without asking PostgreSQL again: a revoked key
# stops working within this many seconds, on every API process.
KEY_CACHE_TTL_S = 2.0
KEY_CACHE_MAX = 10_000
UNKNOWN_KEY_TTL_S = 2.0


class ApiKeys:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], secret: str) -> None:
        self._sessions = sessions
        self._secret = secret
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def create(self, name: str, operator: bool, key: str | None = None) -> tuple[str, ApiKey]:
        """A new key for `name` (who owns what it places); the key itself is returned
        once and never stored."""
        if not NAME_PATTERN.fullmatch(name):
            raise InvalidInput(
                "invalid_name", "name", "1–64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
            )
        async with self._sessions() as session, session.begin():
            return await repository.create_key(session, name, operator, self._secret, key)

    async def all(self) -> list[ApiKey]:
        async with self._sessions() as session:
            return await repository.list_keys(session)

    async def revoke(self, key_id: str) -> ApiKey:
        async with self._sessions() as session, session.begin():
            row = await repository.revoke_key(session, key_id)
        if row is None:
            raise NotFound(f"no key {key_id}")
        return row

    def cached(self, key: str) -> Principal | None:
        """The key's principal if this process verified it a moment ago; no look-up."""
        if not is_well_formed(key):
            return None
        cached = self._cache.get(hash_key(key, self._secret))
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    async def verify(self, key: str) -> Principal | None:
        """The key's principal, or None (malformed, unknown or revoked)."""
        if not is_well_formed(key):  # a typo or junk: no database round trip
            return None
        digest = hash_key(key, self._secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            principal = await repository.find_principal(session, digest)
        if len(self._cache) >= KEY_CACHE_MAX:
            self._cache.clear()
        # Unknown keys are remembered too: a flood of one bad key costs one query.
        self._cache[digest] = (principal, now + (KEY_CACHE_TTL_S if principal else UNKNOWN_KEY_TTL_S))
        return principal
