"""`/ws/orders?orderId=…[&after_seq=N]`: a SNAPSHOT, any missed events, then live
EVENTs with gap-free `seq`; closed with 1000 after the terminal event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import KeyVerifier, key_from_connection
from api.deps import HubDep, SessionsDep, WebSocketSlotsDep
from core.api_keys import Principal
from core.domain import OrderStatus
from core.ids import is_order_id
from core.metrics import WEBSOCKET_CONNECTIONS
from storage import orders as store
from storage.events import Resync, Shutdown

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429


class OrderStream:
    """Sends one order's events in seq order, exactly once each, filling any gap
    from PostgreSQL (the event log is the truth; Redis only says "something new")."""

    def __init__(self, websocket: WebSocket, sessions: async_sessionmaker[AsyncSession], order_id: str):
        self.websocket = websocket
        self.sessions = sessions
        self.order_id = order_id
        self.last_seq = 0
        self.finished = False

    async def send_event(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self.last_seq or self.finished:
            return
        await self.websocket.send_json(event)
        self.last_seq = event["seq"]
        if OrderStatus(event["status"]).is_terminal:
            self.finished = True

    async def catch_up(self) -> None:
        async with self.sessions() as session:
            events = await store.list_events(session, self.order_id, self.last_seq)
        for event in events:
            await self.send_event(store.event_view(event))

    async def deliver(self, message: dict[str, Any] | Resync | Shutdown) -> bool:
        """Handle one hub message; False when the stream should close as going away."""
        if isinstance(message, Shutdown):
            return False
        if isinstance(message, Resync) or message["seq"] > self.last_seq + 1:
            await self.catch_up()
        else:
            await self.send_event(message)
        return True


@router.websocket("/ws/orders")
async def order_updates(
    websocket: WebSocket, hub: HubDep, sessions: SessionsDep, slots: WebSocketSlotsDep
) -> None:
    # Accept first, so that every refusal can say why in a frame and a close code.
    await websocket.accept()
    key = key_from_connection(websocket)
    verifier: KeyVerifier = websocket.state.keys
    principal = await verifier.verify(key) if key else None
    if principal is None:
        await _refuse(
            websocket,
            CLOSE_UNAUTHENTICATED,
            "unauthenticated",
            "send a valid API key: `Authorization: Bearer <key>` or `?token=<key>`",
        )
        return
    if not slots.acquire(principal):
        await _refuse(
            websocket,
            CLOSE_TOO_MANY,
            "too_many_websockets",
            f"this key has {slots.per_key} WebSockets open on this server; close some first",
        )
        return
    try:
        await _stream_order(websocket, hub, sessions, principal)
    finally:
        slots.release(principal)


async def _stream_order(
    websocket: WebSocket, hub: HubDep, sessions: SessionsDep, principal: Principal
) -> None:
    order_id = websocket.query_params.get("orderId", "")
    after_raw = websocket.query_params.get("after_seq")
    after_seq: int | None = None
    if not is_order_id(order_id) or (after_raw is not None and not after_raw.isdigit()):
        await _refuse(
            websocket,
            CLOSE_BAD_REQUEST,
            "bad_request",
            "orderId must be an order id (ord_…) and after_seq a non-negative integer",
        )
        return
    if after_raw is not None:
        after_seq = int(after_raw)

    WEBSOCKET_CONNECTIONS.inc()
    try:
        # Subscribe before reading the snapshot: whatever commits after the read is
        # then already on its way to this queue.
        async with hub.subscribe(order_id) as queue:
            async with sessions() as session:
                order = await store.get_order(session, order_id)
            if order is None or not (principal.operator or order.owner == principal.owner):
                await _refuse(websocket, CLOSE_NOT_FOUND, "order_not_found", f"no order {order_id}")
                return
            stream = OrderStream(websocket, sessions, order_id)
            await websocket.send_json(
                {
                    "type": "SNAPSHOT",
                    "order_id": order.id,
                    "seq": order.last_seq,
                    "status": order.status,
                    "order": store.order_view(order),
                }
            )
            stream.last_seq = (
                after_seq if after_seq is not None and after_seq < order.last_seq else order.last_seq
            )
            await stream.catch_up()  # the missed events, when after_seq asked for them
            if OrderStatus(order.status).is_terminal:
                stream.finished = True
            going_away = await _follow(websocket, stream, queue)
            await websocket.close(CLOSE_GOING_AWAY if going_away else CLOSE_NORMAL)
    except WebSocketDisconnect:
        pass
    finally:
        WEBSOCKET_CONNECTIONS.dec()


async def _follow(websocket: WebSocket, stream: OrderStream, queue: asyncio.Queue[Any]) -> bool:
    """Forward live events until the terminal one; True if the server is going away."""
    disconnected = asyncio.create_task(_wait_for_disconnect(websocket))
    try:
        while not stream.finished:
            next_message = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({next_message, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if disconnected in done:
                next_message.cancel()
                raise WebSocketDisconnect(CLOSE_NORMAL)
            if not await stream.deliver(next_message.result()):
                return True
        return False
    finally:
        disconnected.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await disconnected


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    """Clients send nothing we need; reading is how a disconnect is noticed."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    await websocket.send_json({"type": "ERROR", "code": error, "message": message})
    await websocket.close(code)
