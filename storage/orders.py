"""Order queries: create, read, list, and the one write path for transitions."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from core.domain import OrderStatus
from storage.models import Order, OrderEvent, OrderFailure, utcnow


class IdempotencyKeyTaken(Exception):
    """Another order of this owner already carries the Idempotency-Key."""

    def __init__(self, existing: Order) -> None:
        super().__init__(existing.id)
        self.existing = existing


@dataclass(frozen=True)
class Transition:
    """What one lifecycle step changes: the new status, order fields and event data."""

    order_id: str
    event_key: str
    status: OrderStatus | None  # None: the status stays (e.g. a retry event)
    changes: dict[str, Any]
    data: dict[str, Any]


def format_decimal(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def order_view(order: Order) -> dict[str, Any]:
    """The order as clients see it (GET /orders/{id}, snapshots, `active:order:*`)."""
    return {
        "order_id": order.id,
        "type": order.type,
        "status": order.status,
        "token_in": order.token_in,
        "token_out": order.token_out,
        "amount_in": format_decimal(order.amount),
        "slippage_bps": order.slippage_bps,
        "limit_price": format_decimal(order.limit_price),
        "quotes": order.quotes or [],
        "selected_dex": order.selected_dex,
        "route": order.route or [],
        "min_amount_out": format_decimal(order.min_amount_out),
        "amount_out": format_decimal(order.amount_out),
        "executed_price": format_decimal(order.executed_price),
        "tx_hash": order.tx_hash,
        "attempts": order.attempts,
        "failure_reason": order.failure_reason,
        "created_at": format_time(order.created_at),
        "updated_at": format_time(order.updated_at),
    }


def event_view(event: OrderEvent) -> dict[str, Any]:
    """One lifecycle event as sent on the WebSocket."""
    return {
        "type": "EVENT",
        "order_id": event.order_id,
        "seq": event.seq,
        "status": event.status,
        "at": format_time(event.at),
        "data": event.data,
    }


def failure_view(failure: OrderFailure) -> dict[str, Any]:
    return {
        "type": "FAILURE",
        "order_id": failure.order_id,
        "activity": failure.activity,
        "attempt": failure.attempt,
        "code": failure.code,
        "reason": failure.reason,
        "retryable": failure.retryable,
        "at": format_time(failure.created_at),
    }


async def create_order(session: AsyncSession, order: Order, data: dict[str, Any]) -> Order:
    """Store a new PENDING order with its first event (seq 1), in one transaction.

    Raises IdempotencyKeyTaken when the owner already used the order's Idempotency-Key.
    """
    order.last_seq = 1
    event = OrderEvent(
        order_id=order.id,
        seq=1,
        status=order.status,
        event_key="created",
        data=data,
        at=order.created_at,
    )
    try:
        async with session.begin():
            session.add(order)
            await session.flush()
            session.add(event)
    except IntegrityError:
        existing = await find_by_idempotency_key(session, order.owner, order.idempotency_key)
        await session.commit()  # end the read, so the caller can write with this session
        if existing is None:
            raise
        raise IdempotencyKeyTaken(existing) from None
    return order


async def find_by_idempotency_key(session: AsyncSession, owner: str, key: str | None) -> Order | None:
    if key is None:
        return None
    result = await session.execute(
        select(Order).where(col(Order.owner) == owner, col(Order.idempotency_key) == key)
    )
    return result.scalar_one_or_none()


async def release_idempotency_key(session: AsyncSession, order_id: str) -> None:
    """Free an expired key (kept 24 h) for reuse; the old order keeps everything else."""
    async with session.begin():
        await session.execute(update(Order).where(col(Order.id) == order_id).values(idempotency_key=None))


async def mark_accepted(session: AsyncSession, order_id: str) -> None:
    async with session.begin():
        await session.execute(update(Order).where(col(Order.id) == order_id).values(accepted_at=utcnow()))


async def delete_unaccepted(session: AsyncSession, order_id: str) -> None:
    """Undo a create whose workflow could not be started: the client got an error."""
    async with session.begin():
        order = await session.get(Order, order_id)
        if order is not None and order.accepted_at is None:
            events = await session.execute(select(OrderEvent).where(col(OrderEvent.order_id) == order_id))
            for event in events.scalars():
                await session.delete(event)
            await session.flush()
            await session.delete(order)


async def get_order(session: AsyncSession, order_id: str) -> Order | None:
    return await session.get(Order, order_id)


async def list_orders(
    session: AsyncSession,
    *,
    owner: str | None,
    status: str | None,
    order_type: str | None,
    before_id: str | None,
    limit: int,
) -> list[Order]:
    """Newest first; ULIDs sort by creation time, so the id is the cursor."""
    query = select(Order).order_by(col(Order.id).desc()).limit(limit)
    if owner is not None:
        query = query.where(col(Order.owner) == owner)
    if status is not None:
        query = query.where(col(Order.status) == status)
    if order_type is not None:
        query = query.where(col(Order.type) == order_type)
    if before_id is not None:
        query = query.where(col(Order.id) < before_id)
    return list((await session.execute(query)).scalars())


async def list_events(session: AsyncSession, order_id: str, after_seq: int = 0) -> list[OrderEvent]:
    result = await session.execute(
        select(OrderEvent)
        .where(col(OrderEvent.order_id) == order_id, col(OrderEvent.seq) > after_seq)
        .order_by(col(OrderEvent.seq))
    )
    return list(result.scalars())


async def list_failures(session: AsyncSession, order_id: str) -> list[OrderFailure]:
    result = await session.execute(
        select(OrderFailure).where(col(OrderFailure.order_id) == order_id).order_by(col(OrderFailure.id))
    )
    return list(result.scalars())


async def record_transition(session: AsyncSession, transition: Transition) -> tuple[Order, OrderEvent] | None:
    """Apply a transition and append its event with the next seq, atomically.

    Idempotent: a transition whose event_key was already recorded returns the event
    recorded then, so a retried write never creates a second event. None when the
    order does not exist.
    """
    for tries_left in (1, 0):
        try:
            async with session.begin():
                appended = await _append(session, transition)
        except IntegrityError:
            # The same event key written at the same moment (a retried record racing its
            # first try): this statement changed nothing, and the first write's event is
            # what the read below finds.
            if not tries_left:
                raise
            continue
        if appended is not None:
            return appended
        break
    async with session.begin():
        order = await session.get(Order, transition.order_id)
        if order is None:
            return None
        earlier = (
            await session.execute(
                select(OrderEvent).where(
                    col(OrderEvent.order_id) == transition.order_id,
                    col(OrderEvent.event_key) == transition.event_key,
                )
            )
        ).scalar_one_or_none()
    if earlier is None:
        raise RuntimeError(
            f"{transition.order_id}: transition {transition.event_key} neither applied nor found"
        )
    return order, earlier


async def _append(session: AsyncSession, transition: Transition) -> tuple[Order, OrderEvent] | None:
    """One statement, one round trip: bump the order's seq and apply the changes unless
    the event key is already recorded, then insert the event with that seq. None when
    nothing was written (no such order, or the key was recorded before)."""
    now = utcnow()
    statement = _append_statement(tuple(sorted(transition.changes)), transition.status is not None)
    # Parameter names are no column's: SQLAlchemy would take one for an extra SET.
    params: dict[str, Any] = {
        "p_order_id": transition.order_id,
        "p_event_key": transition.event_key,
        "p_data": transition.data,
        "p_now": now,
        **{f"set_{field}": value for field, value in transition.changes.items()},
    }
    if transition.status is not None:
        params["p_status"] = str(transition.status)
    # Statement-level atomic: no BEGIN/COMMIT round trips around it.
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (await session.execute(statement, params)).first()
    if row is None:
        return None
    fields = row._mapping
    order = Order(**{column.name: fields[column.name] for column in _table(Order).c})
    event = OrderEvent(
        id=fields["event_id"],
        order_id=order.id,
        seq=order.last_seq,
        status=order.status,
        event_key=transition.event_key,
        data=transition.data,
        at=now,
    )
    return order, event


@functools.cache
def _append_statement(fields: tuple[str, ...], sets_status: bool) -> Select[Any]:
    """The statement of _append for one set of changed fields, built once: building
    its CTEs costs more than running them."""
    orders, events = _table(Order), _table(OrderEvent)
    changes: dict[str, Any] = {
        "last_seq": orders.c.last_seq + 1,
        "updated_at": bindparam("p_now", type_=orders.c.updated_at.type),
        **{field: bindparam(f"set_{field}", type_=orders.c[field].type) for field in fields},
    }
    if sets_status:
        changes["status"] = bindparam("p_status", type_=orders.c.status.type)
    key = bindparam("p_event_key", type_=events.c.event_key.type)
    recorded_before = select(events.c.id).where(
        events.c.order_id == bindparam("p_order_id"), events.c.event_key == key
    )
    moved = (
        update(orders)
        .where(orders.c.id == bindparam("p_order_id"), ~recorded_before.exists())
        .values(changes)
        .returning(*orders.c)
        .cte("moved")
    )
    added = (
        insert(events)
        .from_select(
            ["order_id", "seq", "status", "event_key", "data", "at"],
            select(
                moved.c.id,
                moved.c.last_seq,
                moved.c.status,
                key,
                bindparam("p_data", type_=events.c.data.type),
                bindparam("p_now", type_=events.c.at.type),
            ),
        )
        .returning(events.c.id, events.c.order_id)
        .cte("added")
    )
    return select(moved, added.c.id.label("event_id")).select_from(
        moved.join(added, added.c.order_id == moved.c.id)
    )


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


async def record_failure(session: AsyncSession, failure: OrderFailure) -> None:
    """Store one failed attempt; idempotent on (order_id, failure_key)."""
    async with session.begin():
        exists = await session.execute(
            select(func.count())
            .select_from(OrderFailure)
            .where(
                col(OrderFailure.order_id) == failure.order_id,
                col(OrderFailure.failure_key) == failure.failure_key,
            )
        )
        if exists.scalar_one() == 0:
            session.add(failure)
