"""API keys as a service: create, list and revoke them (the CLI), verify one (every
request). One per process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounts import repository
from accounts.keys import NAME_PATTERN, Principal, hash_key, is_well_formed
from core.errors import InvalidInput, NotFound
from storage.models import ApiKey

# Each API process holds every live key's HMAC and reads them all again after this long:
# a revoked key stops working within this many seconds, on every API process.
KEY_CACHE_TTL_S = 2.0
# A well-formed key that is not live is remembered this long (one query per bad key).
UNKNOWN_KEY_TTL_S = 2.0
UNKNOWN_KEYS_MAX = 10_000
# For a suspect caller, a key not among the live ones read the live keys again, at most
# this often however many forged keys it sends: a key created a moment ago still works.
SUSPECT_RELOAD_EVERY_S = 0.5


class ApiKeys:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._secret = secret
        self._clock = clock
        self._live: dict[str, Principal] = {}  # every live key's principal, by HMAC
        self._live_read_at = -KEY_CACHE_TTL_S  # when the read of `_live` started
        self._reading = asyncio.Lock()
        self._unknown: dict[str, float] = {}  # HMAC of a key found not live → until when

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

    async def verify(self, key: str, suspect: bool = False) -> Principal | None:
        """The key's principal, or None (malformed, unknown or revoked). A live key costs
        an HMAC and a dict look-up. `suspect`: the caller sent too many bad keys, so a key
        that is not live is never looked up by itself (a flood of forged keys would be a
        flood of queries); the live keys are read again instead, at most twice a second."""
        if not is_well_formed(key):  # a typo or junk: no database round trip
            return None
        digest = hash_key(key, self._secret)
        now = self._clock()
        await self._read_live(fresher_than=now - KEY_CACHE_TTL_S)
        principal = self._live.get(digest)
        if principal is not None:
            return principal
        if self._unknown.get(digest, 0.0) > now:
            return None
        if suspect:
            await self._read_live(fresher_than=now - SUSPECT_RELOAD_EVERY_S)
            return self._live.get(digest)
        # Created since the live keys were read, or not a key at all: ask once.
        async with self._sessions() as session:
            principal = await repository.find_principal(session, digest)
        if principal is not None:
            self._live[digest] = principal  # until the next read, within KEY_CACHE_TTL_S
            return principal
        if len(self._unknown) >= UNKNOWN_KEYS_MAX:
            self._unknown = {d: until for d, until in self._unknown.items() if until > now}
            if len(self._unknown) >= UNKNOWN_KEYS_MAX:
                self._unknown.clear()
        self._unknown[digest] = now + UNKNOWN_KEY_TTL_S
        return None

    async def _read_live(self, fresher_than: float) -> None:
        """Read every live key unless a read started after `fresher_than`; concurrent
        callers share one read."""
        if self._live_read_at > fresher_than:
            return
        async with self._reading:
            if self._live_read_at > fresher_than:  # another request read them meanwhile
                return
            started = self._clock()
            async with self._sessions() as session:
                live = await repository.live_principals(session)
            self._live, self._live_read_at = live, started
