"""`/ws/orders?orderId=…[&after_seq=N]` and `/ws/strategies?strategyId=…[&after_seq=N]`:
a SNAPSHOT, any missed events, then live EVENTs with gap-free `seq`; closed with 1000
after the terminal event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from accounts.keys import Principal
from accounts.revocations import Revocations
from api.auth import key_from_connection, principal_of
from api.deps import HubDep, OrdersDep, RevocationsDep, StrategiesDep, WebSocketSlotsDep
from api.limits import WebSocketSlots
from core.domain import OrderStatus, StrategyStatus
from core.errors import NotFound, RateLimited, Unauthenticated
from core.ids import is_order_id, is_strategy_id
from core.metrics import WEBSOCKET_CONNECTIONS
from orders.schemas import OrderView, SnapshotFrame
from orders.service import OrderService
from storage.events import HubMessage, Resync, Shutdown
from strategies.schemas import StrategySnapshot
from strategies.service import StrategyService

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429

# ASCII digits only (str.isdigit also takes "²", which int() refuses).
AFTER_SEQ = re.compile(r"[0-9]{1,12}")


class EventStream:
    """Sends one order's (or strategy's) events in seq order, exactly once each, filling
    any gap from PostgreSQL (the event log is the truth; Redis only says "something
    new")."""

    def __init__(
        self,
        websocket: WebSocket,
        events_after: Callable[[int], Awaitable[Sequence[BaseModel]]],
        is_terminal: Callable[[str], bool],
        last_seq: int,
    ) -> None:
        self.websocket = websocket
        self.events_after = events_after
        self.is_terminal = is_terminal
        self.last_seq = last_seq
        self.finished = False

    async def send_event(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self.last_seq or self.finished:
            return
        await self.websocket.send_json(event)
        self.last_seq = event["seq"]
        if self.is_terminal(event["status"]):
            self.finished = True

    async def catch_up(self) -> None:
        for event in await self.events_after(self.last_seq):
            await self.send_event(event.model_dump(mode="json"))

    async def deliver(self, message: HubMessage) -> bool:
        """Handle one hub message; False when the stream should close as going away."""
        if isinstance(message, Shutdown):
            return False
        if isinstance(message, Resync) or message["seq"] > self.last_seq + 1:
            await self.catch_up()
        else:
            await self.send_event(message)
        return True


async def _serve(
    websocket: WebSocket,
    slots: WebSocketSlots,
    revocations: Revocations,
    stream: Callable[[Principal, asyncio.Event], Awaitable[None]],
) -> None:
    """Authenticate the socket (as a request: the same failed-auth limit per address),
    hold one of its key's slots, and run `stream` until it ends or the key is revoked."""
    # Accept first, so that every refusal can say why in a frame and a close code.
    await websocket.accept()
    key = key_from_connection(websocket)
    try:
        principal = await principal_of(websocket)
    except RateLimited as limited:
        await _refuse(websocket, CLOSE_TOO_MANY, limited.code, limited.detail)
        return
    except Unauthenticated:
        await _refuse(
            websocket,
            CLOSE_UNAUTHENTICATED,
            "unauthenticated",
            "send a valid API key: `Authorization: Bearer <key>` or `?token=<key>`",
        )
        return
    assert key is not None  # a principal comes from a key
    if not slots.acquire(principal):
        await _refuse(
            websocket,
            CLOSE_TOO_MANY,
            "too_many_websockets",
            f"this key has {slots.per_key} WebSockets open on this server; close some first",
        )
        return
    try:
        with revocations.watch(key) as revoked:
            await stream(principal, revoked)
    finally:
        slots.release(principal)


@dataclass(frozen=True)
class Snapshot:
    """The first frame of a stream, and where its event log stands."""

    frame: BaseModel
    seq: int
    terminal: bool


@dataclass(frozen=True)
class Subject:
    """What a stream follows (an order, a strategy): how the query names it and how to
    read its snapshot and events."""

    param: str  # the query parameter: orderId, strategyId
    noun: str  # order, strategy
    is_id: Callable[[str], bool]
    id_shape: str  # for the 4400 message
    snapshot: Callable[[Principal, str], Awaitable[Snapshot]]  # NotFound when not the caller's
    events_after: Callable[[str, int], Awaitable[Sequence[BaseModel]]]
    is_terminal: Callable[[str], bool]  # of an event's status


def order_subject(orders: OrderService) -> Subject:
    async def snapshot(principal: Principal, order_id: str) -> Snapshot:
        order = await orders.get(principal, order_id)
        frame = SnapshotFrame(
            order_id=order.id, seq=order.last_seq, status=order.status, order=OrderView.of(order)
        )
        return Snapshot(frame, order.last_seq, order.status.is_terminal)

    return Subject(
        "orderId",
        "order",
        is_order_id,
        "an order id (ord_…)",
        snapshot,
        orders.events_after,
        lambda status: OrderStatus(status).is_terminal,
    )


def strategy_subject(strategies: StrategyService) -> Subject:
    async def snapshot(principal: Principal, strategy_id: str) -> Snapshot:
        view, seq = await strategies.snapshot(principal, strategy_id)
        frame = StrategySnapshot(strategy_id=strategy_id, seq=seq, status=view.status, strategy=view)
        return Snapshot(frame, seq, view.status.is_terminal)

    return Subject(
        "strategyId",
        "strategy",
        is_strategy_id,
        "a strategy id (stg_…)",
        snapshot,
        strategies.events_after,
        lambda status: StrategyStatus(status).is_terminal,
    )


@router.websocket("/ws/orders")
async def order_updates(
    websocket: WebSocket,
    hub: HubDep,
    orders: OrdersDep,
    slots: WebSocketSlotsDep,
    revocations: RevocationsDep,
) -> None:
    subject = order_subject(orders)
    await _serve(
        websocket,
        slots,
        revocations,
        lambda who, revoked: _stream(websocket, hub, subject, who, revoked),
    )


@router.websocket("/ws/strategies")
async def strategy_updates(
    websocket: WebSocket,
    hub: HubDep,
    strategies: StrategiesDep,
    slots: WebSocketSlotsDep,
    revocations: RevocationsDep,
) -> None:
    """`/ws/strategies?strategyId=…[&after_seq=N]`: as /ws/orders, for a strategy."""
    subject = strategy_subject(strategies)
    await _serve(
        websocket,
        slots,
        revocations,
        lambda who, revoked: _stream(websocket, hub, subject, who, revoked),
    )


async def _stream(
    websocket: WebSocket,
    hub: HubDep,
    subject: Subject,
    principal: Principal,
    revoked: asyncio.Event,
) -> None:
    subject_id = websocket.query_params.get(subject.param, "")
    after_raw = websocket.query_params.get("after_seq")
    if not subject.is_id(subject_id) or (after_raw is not None and not AFTER_SEQ.fullmatch(after_raw)):
        await _refuse(
            websocket,
            CLOSE_BAD_REQUEST,
            "bad_request",
            f"{subject.param} must be {subject.id_shape} and after_seq a non-negative integer",
        )
        return
    after_seq = min(int(after_raw), 2**31 - 1) if after_raw is not None else None

    WEBSOCKET_CONNECTIONS.inc()
    try:
        # Subscribe before reading the snapshot: whatever commits after the read is
        # then already on its way to this queue.
        async with hub.subscribe(subject_id) as queue:
            try:
                snapshot = await subject.snapshot(principal, subject_id)
            except NotFound:
                await _refuse(
                    websocket, CLOSE_NOT_FOUND, f"{subject.noun}_not_found", f"no {subject.noun} {subject_id}"
                )
                return
            await websocket.send_json(snapshot.frame.model_dump(mode="json"))
            replay_from = after_seq if after_seq is not None and after_seq < snapshot.seq else snapshot.seq
            stream = EventStream(
                websocket,
                lambda after: subject.events_after(subject_id, after),
                subject.is_terminal,
                replay_from,
            )
            await stream.catch_up()  # the missed events, when after_seq asked for them
            if snapshot.terminal:
                stream.finished = True
            ending = await _follow(websocket, stream, queue, revoked)
            if ending is Ending.REVOKED:
                await _refuse(websocket, CLOSE_UNAUTHENTICATED, "unauthenticated", "this API key was revoked")
            else:
                await websocket.close(CLOSE_GOING_AWAY if ending is Ending.GOING_AWAY else CLOSE_NORMAL)
    except WebSocketDisconnect:
        pass
    finally:
        WEBSOCKET_CONNECTIONS.dec()


class Ending(Enum):
    TERMINAL = "terminal"
    GOING_AWAY = "going away"
    REVOKED = "revoked"


async def _follow(
    websocket: WebSocket,
    stream: EventStream,
    queue: asyncio.Queue[HubMessage],
    revocation: asyncio.Event,
) -> Ending:
    """Forward live events until the terminal one, the server going away, or the key's
    revocation."""
    disconnected = asyncio.create_task(_wait_for_disconnect(websocket))
    revoked = asyncio.create_task(revocation.wait())
    try:
        while not stream.finished:
            next_message = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {next_message, disconnected, revoked}, return_when=asyncio.FIRST_COMPLETED
            )
            if disconnected in done:
                next_message.cancel()
                raise WebSocketDisconnect(CLOSE_NORMAL)
            if revoked in done:
                next_message.cancel()
                return Ending.REVOKED
            if not await stream.deliver(next_message.result()):
                return Ending.GOING_AWAY
        return Ending.TERMINAL
    finally:
        for task in (disconnected, revoked):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    """Clients send nothing we need; reading is how a disconnect is noticed."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    await websocket.send_json({"type": "ERROR", "code": error, "message": message})
    await websocket.close(code)
