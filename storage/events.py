"""Redis streams that carry events to every API process.

PostgreSQL stays the source of truth; Redis carries what is new. A stream (not
pub/sub) keeps events while a reader reconnects; a reader that lost its place tells its
subscribers to resync from PostgreSQL. One EventHub per API process reads a stream once
and hands each entry to the local subscribers of the entry's subject (an order id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100_000
# Under the client's read timeout (storage/redis.py), so a quiet stream is not an error.
XREAD_BLOCK_MS = 1000
XREAD_COUNT = 500
# How often a reader checks that the stream still holds what it has not read yet.
TRIM_CHECK_EVERY_S = 10.0


@dataclass(frozen=True)
class Resync:
    """The hub may have missed events: the subscriber re-reads PostgreSQL."""


@dataclass(frozen=True)
class Shutdown:
    """The API process is stopping."""


HubMessage = dict[str, Any] | Resync | Shutdown


def stream_entry(subject: str, event: dict[str, Any]) -> dict[str, str]:
    """The fields of one stream entry: whom it concerns and the event as JSON."""
    return {"order_id": subject, "event": json.dumps(event)}


class EventHub:
    """One stream reader per API process, dispatching events to local subscribers."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        queue_size: int = 256,
        on_reconnect: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._on_reconnect = on_reconnect
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[HubMessage]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._all_gone = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def going_away(self, timeout_s: float) -> None:
        """Ask every subscriber to close (1001), and wait a little for them to do so."""
        for queues in list(self._subscribers.values()):
            for queue in list(queues):
                self._offer(queue, Shutdown())
        if self._subscribers:
            self._all_gone.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), timeout_s)

    async def stop(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                self._offer(queue, Shutdown())
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self, subject: str) -> AsyncIterator[asyncio.Queue[HubMessage]]:
        queue: asyncio.Queue[HubMessage] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(subject, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(subject)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[subject]
            if not self._subscribers:
                self._all_gone.set()

    def _offer(self, queue: asyncio.Queue[HubMessage], message: HubMessage) -> None:
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            # A slow subscriber: drop what is queued and let it catch up from PostgreSQL
            # (or, when the server stops, just tell it so).
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(message if isinstance(message, Shutdown) else Resync())

    def _broadcast_resync(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                self._offer(queue, Resync())

    async def trimmed_past(self, last_id: str) -> bool:
        """Whether the stream's oldest entry is newer than `last_id` (what came between
        may be gone)."""
        try:
            info = await self._redis.xinfo_stream(self._stream)
        except RedisError:
            return False  # the read loop notices Redis failing
        first = info.get("first-entry")
        if not first:
            return False
        first_id = first[0].decode() if isinstance(first[0], bytes) else str(first[0])
        return stream_id(first_id) > stream_id(last_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_trim_check = loop.time() + TRIM_CHECK_EVERY_S
        last_id = "$"
        failing = False
        while True:
            try:
                if last_id == "$":
                    # Start from the stream's current end, as an explicit id, so that a
                    # reconnect continues from here rather than from "now".
                    info = await self._redis.xinfo_stream(self._stream)
                    last_id = info["last-generated-id"]
                    if isinstance(last_id, bytes):
                        last_id = last_id.decode()
                if failing:
                    failing = False
                    self._broadcast_resync()
                    if self._on_reconnect is not None:
                        await self._on_reconnect()
                batches: Any = await self._redis.xread(
                    {self._stream: last_id}, count=XREAD_COUNT, block=XREAD_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis, or PostgreSQL in on_reconnect: never stop reading
                if isinstance(error, RedisError) and "no such key" in str(error).lower():
                    with contextlib.suppress(RedisError):
                        await self._redis.xadd(self._stream, {"order_id": "", "event": "{}"})
                    continue
                if not failing:
                    log.warning("event stream unavailable, retrying: %s", error)
                failing = True
                await asyncio.sleep(0.5)
                continue
            read = 0
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    read += 1
                    last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        self._dispatch(fields)
                    except ValueError as error:  # a malformed entry: skip it, keep reading
                        log.warning("skipping stream entry %s: %s", last_id, error)
            if read >= XREAD_COUNT or loop.time() >= next_trim_check:
                next_trim_check = loop.time() + TRIM_CHECK_EVERY_S
                if await self.trimmed_past(last_id):
                    # Entries this reader had not read yet were trimmed (it fell behind by
                    # more than the stream keeps): subscribers re-read PostgreSQL.
                    log.warning("event stream trimmed past this reader; subscribers resync")
                    self._broadcast_resync()

    def _dispatch(self, fields: dict[Any, Any]) -> None:
        subject = _text(fields.get(b"order_id", fields.get("order_id", "")))
        queues = self._subscribers.get(subject)
        if not queues:
            return
        event = json.loads(_text(fields.get(b"event", fields.get("event", "{}"))))
        for queue in list(queues):
            self._offer(queue, event)


def stream_id(text: str) -> tuple[int, int]:
    """A stream entry id ("<ms>-<seq>") as a comparable pair."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
