"""The keys of a process's open streams, checked again every few seconds (one check per
key, however many streams it has), so that a revoked key's streams close within seconds
rather than at the end of a days-long wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from accounts.service import ApiKeys

log = logging.getLogger(__name__)

# Each key is checked again this often (against the live keys, read again every 2 s).
REVERIFY_EVERY_S = 3.0


class Revocations:
    """Open streams by key; `run()` sets a stream's event when its key is revoked."""

    def __init__(self, keys: ApiKeys, every_s: float = REVERIFY_EVERY_S) -> None:
        self._keys, self._every_s = keys, every_s
        self._watched: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set when `key` is found revoked."""
        revoked = asyncio.Event()
        self._watched.setdefault(key, set()).add(revoked)
        try:
            yield revoked
        finally:
            events = self._watched.get(key, set())
            events.discard(revoked)
            if not events:
                self._watched.pop(key, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            for key, events in list(self._watched.items()):
                try:
                    valid = await self._keys.verify(key)
                except Exception as error:  # PostgreSQL restarting: keep streaming, ask later
                    log.warning("could not re-check the keys of open streams: %s", error)
                    break
                if valid is None:
                    for event in events:
                        event.set()
