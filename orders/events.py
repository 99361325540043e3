"""An order's events on their way to every API process (the `order-events` Redis
stream), and `active:order:{id}`: the current snapshot of each non-terminal order."""

from __future__ import annotations

import json

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orders import repository
from orders.schemas import EventView, OrderView
from storage.events import STREAM_MAXLEN, stream_entry

EVENT_STREAM = "order-events"
ACTIVE_PREFIX = "active:order:"
SYNC_BATCH = 500


def active_key(order_id: str) -> str:
    return f"{ACTIVE_PREFIX}{order_id}"


def snapshot_json(view: OrderView, seq: int) -> str:
    return json.dumps({"seq": seq, **view.model_dump(mode="json")})


# Set the snapshot unless Redis already holds a newer one (a worker wrote it meanwhile).
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['seq'] >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class OrderEvents:
    """Fans out committed events and keeps the active snapshots current."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def forget(self, order_id: str) -> None:
        """Drop the active snapshot of an order that was never accepted."""
        await self._redis.delete(active_key(order_id))

    async def publish(self, view: OrderView, event: EventView) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(
            EVENT_STREAM,
            stream_entry(event.order_id, event.model_dump(mode="json")),  # type: ignore[arg-type]
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        if event.status.is_terminal:
            pipe.delete(active_key(event.order_id))
        else:
            pipe.set(active_key(event.order_id), snapshot_json(view, event.seq))
        await pipe.execute()


class ActiveOrders:
    """`active:order:{id}` exists exactly while the order is non-terminal."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def sync_from_database(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Rebuild the active set from PostgreSQL (after Redis lost it, or at start):
        every non-terminal order gets its snapshot, and no terminal one keeps a key."""
        async with sessions() as session:
            live = await repository.live(session)
        set_if_newer = self._redis.register_script(_SET_IF_NEWER)
        # Pipelined, a batch per round trip, not one round trip per open order.
        for start in range(0, len(live), SYNC_BATCH):
            pipe = self._redis.pipeline(transaction=False)
            for order in live[start : start + SYNC_BATCH]:
                snapshot = snapshot_json(OrderView.of(order), order.last_seq)
                await set_if_newer(keys=[active_key(order.id)], args=[snapshot, order.last_seq], client=pipe)
            await pipe.execute()
        # Keys of orders that finished meanwhile, or that PostgreSQL does not know.
        keyed = [
            key.decode().removeprefix(ACTIVE_PREFIX)
            async for key in self._redis.scan_iter(match=f"{ACTIVE_PREFIX}*")
        ]
        if keyed:
            async with sessions() as session:
                stale = set(keyed) - await repository.live_ids(session, keyed)
            if stale:
                await self._redis.delete(*(active_key(order_id) for order_id in stale))
        return len(live)

    async def get(self, order_id: str) -> dict[str, object] | None:
        raw = await self._redis.get(active_key(order_id))
        return json.loads(raw) if raw else None

    async def count(self) -> int:
        count = 0
        async for _ in self._redis.scan_iter(match=f"{ACTIVE_PREFIX}*", count=1000):
            count += 1
        return count
