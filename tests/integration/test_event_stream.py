"""The Redis stream that carries events between processes: a reader knows when the
stream was trimmed past what it had read, and then resyncs from PostgreSQL."""

from __future__ import annotations

import uuid

from core.settings import Settings
from storage.events import EventHub
from storage.redis import connect_redis


async def test_a_reader_knows_when_entries_it_had_not_read_were_trimmed(settings: Settings) -> None:
    redis = connect_redis(settings.redis_url)
    stream = f"test-events-{uuid.uuid4().hex}"
    try:
        ids = [_text(await redis.xadd(stream, {"order_id": "ord_X", "event": "{}"})) for _ in range(5)]
        hub = EventHub(redis, stream)
        assert not await hub.trimmed_past(ids[0])  # nothing gone yet
        await redis.xtrim(
            stream, maxlen=2, approximate=False
        )  # what a reader at ids[1] had not read yet is gone
        assert await hub.trimmed_past(ids[1])
        assert not await hub.trimmed_past(ids[-1])  # a reader that is current lost nothing
    finally:
        await redis.delete(stream)
        await redis.aclose()


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
