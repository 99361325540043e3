"""Order queries. Functions take the caller's session; the service decides where a unit
of work begins and ends. Transitions and the first insert are single statements, so
they commit on their own (one round trip each)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from core.domain import TERMINAL_STATUSES, OrderStatus, OrderType
from orders.transitions import OrderPatch
from storage.models import Order, OrderEvent, OrderFailure, utcnow
from wallets import repository as wallet_repository

CREATED_EVENT_KEY = "created"


@dataclass(frozen=True)
class Recorded:
    order: Order
    event: OrderEvent


async def insert_order(session: AsyncSession, order: Order, data: dict[str, Any]) -> bool:
    """Insert a PENDING order with its first event (seq 1) in one statement. False, with
    nothing inserted, when the owner already has an order with its Idempotency-Key."""
    orders, events = _table(Order), _table(OrderEvent)
    order.last_seq = 1
    values = {c.name: getattr(order, c.name) for c in orders.c if getattr(order, c.name) is not None}
    inserted = (
        pg_insert(orders)
        .values(values)
        .on_conflict_do_nothing(constraint="uq_orders_owner_idempotency_key")
        .returning(orders.c.id, orders.c.status, orders.c.created_at)
        .cte("inserted")
    )
    statement = insert(events).from_select(
        ["order_id", "seq", "status", "event_key", "data", "at"],
        select(
            inserted.c.id,
            literal(1),
            inserted.c.status,
            literal(CREATED_EVENT_KEY),
            bindparam("p_data", data, type_=events.c.data.type),
            inserted.c.created_at,
        ),
    )
    await _autocommit(session)
    result = await session.execute(statement.returning(events.c.order_id))
    return result.first() is not None


async def find_by_idempotency_key(session: AsyncSession, owner: str, key: str) -> Order | None:
    result = await session.execute(
        select(Order).where(col(Order.owner) == owner, col(Order.idempotency_key) == key)
    )
    return result.scalar_one_or_none()


async def release_idempotency_key(session: AsyncSession, order_id: str) -> None:
    """Free an expired key (kept 24 h) for reuse; the old order keeps everything else."""
    await session.execute(update(Order).where(col(Order.id) == order_id).values(idempotency_key=None))


async def mark_accepted(session: AsyncSession, order_id: str) -> None:
    await _autocommit(session)
    await session.execute(update(Order).where(col(Order.id) == order_id).values(accepted_at=utcnow()))


async def delete_unaccepted(session: AsyncSession, order_id: str) -> None:
    """Undo an insert whose workflow surely never started (the start did not reach
    Temporal): the client got an error. Its reservation goes with it."""
    order = await session.get(Order, order_id)
    if order is not None and order.accepted_at is None:
        await wallet_repository.forget(session, order_id)
        events = await session.execute(select(OrderEvent).where(col(OrderEvent.order_id) == order_id))
        for event in events.scalars():
            await session.delete(event)
        await session.flush()
        await session.delete(order)


async def count_open(session: AsyncSession, owner: str) -> int:
    """The owner's orders not yet terminal (queued, executing or waiting)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Order)
        .where(col(Order.owner) == owner, col(Order.status).not_in(TERMINAL_STATUSES))
    )
    return int(count or 0)


async def get(session: AsyncSession, order_id: str) -> Order | None:
    return await session.get(Order, order_id)


async def list_page(
    session: AsyncSession,
    *,
    owner: str | None,
    status: OrderStatus | None,
    order_type: OrderType | None,
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


async def live(session: AsyncSession) -> list[Order]:
    """Every non-terminal order."""
    rows = await session.execute(select(Order).where(col(Order.status).not_in(TERMINAL_STATUSES)))
    return list(rows.scalars())


async def live_ids(session: AsyncSession, order_ids: list[str]) -> set[str]:
    """Which of `order_ids` are non-terminal orders."""
    rows = await session.execute(
        select(col(Order.id)).where(col(Order.id).in_(order_ids), col(Order.status).not_in(TERMINAL_STATUSES))
    )
    return set(rows.scalars())


async def unstarted(session: AsyncSession, created_before: datetime, limit: int) -> list[Order]:
    """Orders whose request died before their workflow was started."""
    rows = await session.execute(
        select(Order)
        .where(col(Order.accepted_at).is_(None), col(Order.created_at) < created_before)
        .order_by(col(Order.created_at))
        .limit(limit)
    )
    return list(rows.scalars())


async def unchanged_since(session: AsyncSession, updated_before: datetime, limit: int) -> list[Order]:
    """Non-terminal orders (WAITING aside: waiting is what they should do) not updated since."""
    rows = await session.execute(
        select(Order)
        .where(
            col(Order.status).not_in([*TERMINAL_STATUSES, OrderStatus.WAITING]),
            col(Order.updated_at) < updated_before,
        )
        .order_by(col(Order.updated_at))
        .limit(limit)
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class WaitingOrder:
    order_id: str
    type: OrderType
    token_in: str
    token_out: str
    amount: Decimal
    limit_price: Decimal | None
    trigger_price: Decimal | None = None
    trailing_bps: int | None = None
    peak_price: Decimal | None = None
    parent_id: str | None = None
    # Whose it is: the watcher takes owners' orders in turns.
    owner: str = ""
    # The route it may take (as its workflow plans it): venues allowed (None: all), hops.
    dexes: tuple[str, ...] | None = None
    max_hops: int = 3
    # The seq of its last event: the same while it stays in the same wait.
    last_seq: int = 0


async def waiting(session: AsyncSession) -> list[WaitingOrder]:
    """Every WAITING order, with only what the market watcher needs."""
    rows = await session.execute(
        select(
            col(Order.id),
            col(Order.type),
            col(Order.token_in),
            col(Order.token_out),
            col(Order.amount),
            col(Order.limit_price),
            col(Order.trigger_price),
            col(Order.trailing_bps),
            col(Order.peak_price),
            col(Order.parent_id),
            col(Order.owner),
            col(Order.dexes),
            col(Order.max_hops),
            col(Order.last_seq),
        ).where(col(Order.status) == OrderStatus.WAITING)
    )
    return [
        WaitingOrder(
            row.id,
            row.type,
            row.token_in,
            row.token_out,
            row.amount,
            row.limit_price,
            row.trigger_price,
            row.trailing_bps,
            row.peak_price,
            row.parent_id,
            owner=row.owner,
            dexes=_venues(row.dexes),
            max_hops=row.max_hops,
            last_seq=row.last_seq,
        )
        for row in rows
    ]


def _venues(dexes: list[str] | None) -> tuple[str, ...] | None:
    return tuple(dexes) if dexes is not None else None


async def raise_peaks(session: AsyncSession, peaks: dict[str, tuple[Decimal, Decimal]]) -> None:
    """Trailing stops' new best prices and triggers ({order_id: (peak, trigger)}): only
    ever up, whoever writes (one statement per order, in one transaction)."""
    async with session.begin():
        for order_id, (peak, trigger) in sorted(peaks.items()):
            await session.execute(
                update(Order)
                .where(
                    col(Order.id) == order_id,
                    col(Order.status) == OrderStatus.WAITING,
                    or_(col(Order.peak_price).is_(None), col(Order.peak_price) < peak),
                )
                .values(peak_price=peak, trigger_price=trigger)
            )


async def list_events(
    session: AsyncSession, order_id: str, after_seq: int = 0, limit: int | None = None
) -> list[OrderEvent]:
    query = (
        select(OrderEvent)
        .where(col(OrderEvent.order_id) == order_id, col(OrderEvent.seq) > after_seq)
        .order_by(col(OrderEvent.seq))
    )
    return list((await session.execute(query.limit(limit) if limit is not None else query)).scalars())


async def event_time(session: AsyncSession, order_id: str, seq: int) -> datetime | None:
    at: datetime | None = await session.scalar(
        select(col(OrderEvent.at)).where(col(OrderEvent.order_id) == order_id, col(OrderEvent.seq) == seq)
    )
    return at


async def list_failures(
    session: AsyncSession, order_id: str, after: datetime | None = None, until: datetime | None = None
) -> list[OrderFailure]:
    """The order's failed attempts, oldest first; `after` < created_at <= `until` when given."""
    query = select(OrderFailure).where(col(OrderFailure.order_id) == order_id)
    if after is not None:
        query = query.where(col(OrderFailure.created_at) > after)
    if until is not None:
        query = query.where(col(OrderFailure.created_at) <= until)
    return list((await session.execute(query.order_by(col(OrderFailure.id)))).scalars())


async def count_replays(session: AsyncSession, order_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(OrderEvent)
        .where(col(OrderEvent.order_id) == order_id, col(OrderEvent.event_key).like("replay%"))
    )
    return int(count or 0)


async def record_failure(session: AsyncSession, failure: OrderFailure) -> None:
    """Store one failed attempt; idempotent on (order_id, failure_key)."""
    values = {
        column.name: getattr(failure, column.name) for column in _table(OrderFailure).c if column.name != "id"
    }
    await _autocommit(session)
    await session.execute(
        pg_insert(_table(OrderFailure))
        .values(values)
        .on_conflict_do_nothing(constraint="uq_order_failures_order_key")
    )


async def record_transition(
    session: AsyncSession,
    order_id: str,
    event_key: str,
    status: OrderStatus | None,
    patch: OrderPatch,
    data: dict[str, Any],
) -> Recorded | None:
    """Apply a transition and append its event with the next seq, atomically.

    Idempotent: a transition whose event_key was already recorded returns the event
    recorded then, so a retried write never creates a second event. None when the
    order does not exist.
    """
    for tries_left in (1, 0):
        try:
            appended = await _append(session, order_id, event_key, status, patch, data)
        except IntegrityError:
            # The same event key written at the same moment (a retried record racing its
            # first try): this statement changed nothing, and the first write's event is
            # what the read below finds.
            await session.rollback()
            if not tries_left:
                raise
            continue
        if appended is not None:
            return appended
        break
    order = await session.get(Order, order_id)
    if order is None:
        return None
    earlier = (
        await session.execute(
            select(OrderEvent).where(
                col(OrderEvent.order_id) == order_id, col(OrderEvent.event_key) == event_key
            )
        )
    ).scalar_one_or_none()
    if earlier is None:
        raise RuntimeError(f"{order_id}: transition {event_key} neither applied nor found")
    return Recorded(order, earlier)


async def _append(
    session: AsyncSession,
    order_id: str,
    event_key: str,
    status: OrderStatus | None,
    patch: OrderPatch,
    data: dict[str, Any],
) -> Recorded | None:
    """One statement, one round trip: bump the order's seq and apply the patch unless
    the event key is already recorded, then insert the event with that seq. None when
    nothing was written (no such order, or the key was recorded before)."""
    now = utcnow()
    columns = patch.columns()
    statement = _append_statement(tuple(sorted(columns)), status is not None)
    # Parameter names are no column's: SQLAlchemy would take one for an extra SET.
    params: dict[str, Any] = {
        "p_order_id": order_id,
        "p_event_key": event_key,
        "p_data": data,
        "p_now": now,
        **{f"set_{name}": value for name, value in columns.items()},
    }
    if status is not None:
        params["p_status"] = status
    await _autocommit(session)
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
        event_key=event_key,
        data=data,
        at=now,
    )
    return Recorded(order, event)


@functools.cache
def _append_statement(fields: tuple[str, ...], sets_status: bool) -> Select[Any]:
    """The statement of _append for one set of changed columns, built once: building
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


async def _autocommit(session: AsyncSession) -> None:
    """A session that has not begun yet runs each statement on its own, atomically, with
    no BEGIN/COMMIT round trips; one that has begun keeps its unit of work."""
    if not session.in_transaction():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table
