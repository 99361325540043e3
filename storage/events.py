"""Redis: the event stream that carries order events to every API process, and the
`active:order:{id}` snapshots of non-terminal orders.

PostgreSQL stays the source of truth (order_events); Redis carries what is new. A
stream (not pub/sub) keeps events while a reader reconnects; a reader that lost its
place resyncs from PostgreSQL.
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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from core.domain import TERMINAL_STATUSES
from storage.models import Order
from storage.orders import order_view

log = logging.getLogger(__name__)

EVENT_STREAM = "order-events"
STREAM_MAXLEN = 100_000
# Under redis-py's default 5 s socket timeout, so a quiet stream is not an error.
XREAD_BLOCK_MS = 2000


def active_key(order_id: str) -> str:
    return f"active:order:{order_id}"


# Set the snapshot unless Redis already holds a newer one (a worker wrote it meanwhile).
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['seq'] >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class ActiveOrders:
    """`active:order:{id}` exists exactly while the order is non-terminal."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def sync_from_database(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Rebuild the active set from PostgreSQL (after Redis lost it, or at start):
        every non-terminal order gets its snapshot, and no terminal one keeps a key."""
        terminal = [str(s) for s in TERMINAL_STATUSES]
        async with sessions() as session:
            live = list(
                (await session.execute(select(Order).where(col(Order.status).not_in(terminal)))).scalars()
            )
        for order in live:
            snapshot = json.dumps({"seq": order.last_seq, **order_view(order)})
            await self._redis.eval(_SET_IF_NEWER, 1, active_key(order.id), snapshot, order.last_seq)
        # Keys of orders that finished meanwhile, or that PostgreSQL does not know.
        keyed = [
            key.decode().removeprefix("active:order:")
            async for key in self._redis.scan_iter(match="active:order:*")
        ]
        if keyed:
            async with sessions() as session:
                still_live = await session.execute(
                    select(col(Order.id)).where(col(Order.id).in_(keyed), col(Order.status).not_in(terminal))
                )
                stale = set(keyed) - set(still_live.scalars())
            if stale:
                await self._redis.delete(*(active_key(order_id) for order_id in stale))
        return len(live)

    async def get(self, order_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(active_key(order_id))
        return json.loads(raw) if raw else None

    async def count(self) -> int:
        count = 0
        async for _ in self._redis.scan_iter(match="active:order:*", count=1000):
            count += 1
        return count


class EventPublisher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, order: dict[str, Any], event: dict[str, Any], terminal: bool) -> None:
        """Fan out one committed event and keep the active snapshot current."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(
            EVENT_STREAM,
            {"order_id": event["order_id"], "event": json.dumps(event)},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        if terminal:
            pipe.delete(active_key(event["order_id"]))
        else:
            pipe.set(active_key(event["order_id"]), json.dumps({"seq": event["seq"], **order}))
        await pipe.execute()


@dataclass(frozen=True)
class Resync:
    """The hub may have missed events: the subscriber re-reads PostgreSQL."""


@dataclass(frozen=True)
class Shutdown:
    """The API process is stopping."""


HubMessage = dict[str, Any] | Resync | Shutdown


class EventHub:
    """One stream reader per API process, dispatching events to local subscribers."""

    def __init__(
        self,
        redis: Redis,
        queue_size: int = 256,
        on_reconnect: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._redis = redis
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
    async def subscribe(self, order_id: str) -> AsyncIterator[asyncio.Queue[HubMessage]]:
        queue: asyncio.Queue[HubMessage] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(order_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(order_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[order_id]
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

    async def _run(self) -> None:
        last_id = "$"
        failing = False
        while True:
            try:
                if last_id == "$":
                    # Start from the stream's current end, as an explicit id, so that a
                    # reconnect continues from here rather than from "now".
                    info = await self._redis.xinfo_stream(EVENT_STREAM)
                    last_id = info["last-generated-id"]
                    if isinstance(last_id, bytes):
                        last_id = last_id.decode()
                if failing:
                    failing = False
                    self._broadcast_resync()
                    if self._on_reconnect is not None:
                        await self._on_reconnect()
                batches: Any = await self._redis.xread(
                    {EVENT_STREAM: last_id}, count=500, block=XREAD_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis, or PostgreSQL in on_reconnect: never stop reading
                if isinstance(error, RedisError) and "no such key" in str(error).lower():
                    with contextlib.suppress(RedisError):
                        await self._redis.xadd(EVENT_STREAM, {"order_id": "", "event": "{}"})
                    continue
                if not failing:
                    log.warning("event stream unavailable, retrying: %s", error)
                failing = True
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        self._dispatch(fields)
                    except ValueError as error:  # a malformed entry: skip it, keep reading
                        log.warning("skipping stream entry %s: %s", last_id, error)

    def _dispatch(self, fields: dict[Any, Any]) -> None:
        order_id = _text(fields.get(b"order_id", fields.get("order_id", "")))
        queues = self._subscribers.get(order_id)
        if not queues:
            return
        event = json.loads(_text(fields.get(b"event", fields.get("event", "{}"))))
        for queue in list(queues):
            self._offer(queue, event)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
