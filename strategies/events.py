"""A strategy's events on their way to every API process: the same Redis stream as the
orders' events, keyed by strategy id (the WebSocket hub fans out by key)."""

from __future__ import annotations

from redis.asyncio import Redis

from orders.events import EVENT_STREAM
from storage.events import STREAM_MAXLEN, stream_entry
from strategies.schemas import StrategyEventView


class StrategyEventsPublisher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, event: StrategyEventView) -> None:
        await self._redis.xadd(
            EVENT_STREAM,
            stream_entry(event.strategy_id, event.model_dump(mode="json")),  # type: ignore[arg-type]
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
