"""Reading an order's WebSocket the way a client does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.keys import ALICE

TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"}


@dataclass
class Stream:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    @property
    def snapshot(self) -> dict[str, Any]:
        return self.frames[0]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "EVENT"]

    def assert_gap_free(self) -> None:
        """Snapshot seq, then every event exactly once, rising by one."""
        seqs = [e["seq"] for e in self.events]
        start = self.snapshot.get("seq", 0)
        assert seqs == list(range(start + 1, start + 1 + len(seqs))), seqs


def ws_url(api_url: str, query: str, key: str | None = ALICE, path: str = "/ws/orders") -> str:
    """A stream's URL, with `key` as the `token` parameter (as a browser sends it)."""
    url = api_url.replace("http://", "ws://") + path + "?" + query
    return url + f"&token={key}" if key else url


async def read_stream(
    api_url: str,
    query: str,
    until_frames: int | None = None,
    key: str | None = ALICE,
    path: str = "/ws/orders",
) -> Stream:
    """Collect frames until the server closes (or `until_frames` frames arrived)."""
    stream = Stream()
    async with connect(ws_url(api_url, query, key, path), open_timeout=10) as ws:
        try:
            async for raw in ws:
                stream.frames.append(json.loads(raw))
                if until_frames is not None and len(stream.frames) >= until_frames:
                    break
        except ConnectionClosed:
            pass
        await ws.wait_closed() if until_frames is None else None
        stream.close_code = ws.close_code
    return stream
