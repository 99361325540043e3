"""Strategy queries. Functions take the caller's session; the service decides where a
unit of work begins and ends."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from contracts.strategies import StrategyEventType
from core.domain import OrderStatus, StrategyStatus, SwapMode
from storage.models import Order, Strategy, StrategyEvent, utcnow
from strategies.schemas import ChildTotals
from strategies.transitions import StrategyChange

CREATED_EVENT_KEY = "created"
RUNNING = (StrategyStatus.RUNNING, StrategyStatus.PAUSED)


@dataclass(frozen=True)
class RecordedStrategy:
    strategy: Strategy
    event: StrategyEvent


def insert(session: AsyncSession, strategy: Strategy) -> None:
    """The strategy and its first event (seq 1), in the caller's unit of work."""
    strategy.last_seq = 1
    event = StrategyEvent(
        strategy_id=strategy.id,
        seq=1,
        status=strategy.status,
        event_key=CREATED_EVENT_KEY,
        data={"event": StrategyEventType.CREATED, **strategy.params},
        created_at=strategy.created_at,
    )
    session.add(strategy)
    session.add(event)


async def delete_unstarted(session: AsyncSession, strategy_id: str) -> None:
    """Undo a strategy whose workflow never started: its first event and its row."""
    await session.execute(delete(StrategyEvent).where(col(StrategyEvent.strategy_id) == strategy_id))
    await session.execute(delete(Strategy).where(col(Strategy.id) == strategy_id))


async def delete_never_started(session: AsyncSession, strategy_id: str) -> bool:
    """Undo a strategy whose workflow has recorded nothing (its only event is `created`):
    the row locked as `record` locks it, so a workflow that starts meanwhile either finds
    its row gone (and ends without placing anything) or keeps it (False)."""
    strategy = (
        await session.execute(
            select(Strategy)
            .where(col(Strategy.id) == strategy_id, col(Strategy.last_seq) == 1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if strategy is None:
        return False
    await delete_unstarted(session, strategy_id)
    return True


async def find_by_idempotency_key(session: AsyncSession, owner: str, key: str) -> Strategy | None:
    result = await session.execute(
        select(Strategy).where(col(Strategy.owner) == owner, col(Strategy.idempotency_key) == key)
    )
    return result.scalar_one_or_none()


async def release_idempotency_key(session: AsyncSession, strategy_id: str) -> None:
    """Free a key older than its 24 h for a new request."""
    await session.execute(
        update(Strategy).where(col(Strategy.id) == strategy_id).values(idempotency_key=None)
    )


async def get(session: AsyncSession, strategy_id: str) -> Strategy | None:
    return await session.get(Strategy, strategy_id)


async def lock_owner(session: AsyncSession, owner: str) -> None:
    """Serialize an owner's strategy creations until the transaction ends."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"strategies:{owner}"))))


async def count_running(session: AsyncSession, owner: str) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(Strategy)
        .where(col(Strategy.owner) == owner, col(Strategy.status).in_(RUNNING))
    )
    return int(result.scalar_one())


async def running_after(session: AsyncSession, after_id: str, limit: int) -> list[Strategy]:
    """Running or paused strategies after `after_id`, by id: the reconciler's next batch."""
    result = await session.execute(
        select(Strategy)
        .where(col(Strategy.status).in_(RUNNING), col(Strategy.id) > after_id)
        .order_by(col(Strategy.id))
        .limit(limit)
    )
    return list(result.scalars())


async def running_of(session: AsyncSession, owner: str) -> list[Strategy]:
    result = await session.execute(
        select(Strategy)
        .where(col(Strategy.owner) == owner, col(Strategy.status).in_(RUNNING))
        .order_by(col(Strategy.id))
    )
    return list(result.scalars())


async def list_page(
    session: AsyncSession,
    *,
    owner: str | None,
    status: StrategyStatus | None,
    before_id: str | None,
    limit: int,
) -> list[Strategy]:
    """Newest first; ULIDs sort by creation time, so the id is the cursor."""
    query = select(Strategy).order_by(col(Strategy.id).desc()).limit(limit)
    if owner is not None:
        query = query.where(col(Strategy.owner) == owner)
    if status is not None:
        query = query.where(col(Strategy.status) == status)
    if before_id is not None:
        query = query.where(col(Strategy.id) < before_id)
    return list((await session.execute(query)).scalars())


async def child_totals(session: AsyncSession, strategy_ids: list[str]) -> dict[str, list[ChildTotals]]:
    """Each strategy's orders counted by status, with what they spent and received: one
    row per status, however many orders a strategy has placed."""
    amount_in = case(
        (col(Order.swap_mode) == SwapMode.EXACT_IN, col(Order.amount)), else_=col(Order.amount_in_filled)
    )
    rows = await session.execute(
        select(
            col(Order.parent_id),
            col(Order.status),
            func.count(),
            func.sum(amount_in),
            func.sum(col(Order.amount_out)),
        )
        .where(col(Order.parent_id).in_(strategy_ids))
        .group_by(col(Order.parent_id), col(Order.status))
    )
    found: dict[str, list[ChildTotals]] = {strategy_id: [] for strategy_id in strategy_ids}
    for parent_id, status, count, spent, received in rows:
        found[str(parent_id)].append(ChildTotals(OrderStatus(status), int(count), spent, received))
    return found


async def newest_children(session: AsyncSession, strategy_ids: list[str], limit: int) -> dict[str, list[str]]:
    """The ids of each strategy's newest `limit` orders, oldest first."""
    ranked = (
        select(
            col(Order.parent_id).label("parent_id"),
            col(Order.id).label("order_id"),
            func.row_number()
            .over(partition_by=col(Order.parent_id), order_by=col(Order.id).desc())
            .label("rank"),
        )
        .where(col(Order.parent_id).in_(strategy_ids))
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.parent_id, ranked.c.order_id)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.parent_id, ranked.c.order_id)
    )
    found: dict[str, list[str]] = {strategy_id: [] for strategy_id in strategy_ids}
    for parent_id, order_id in rows:
        found[str(parent_id)].append(str(order_id))
    return found


async def open_children(session: AsyncSession, strategy_id: str) -> list[tuple[str, OrderStatus]]:
    """The strategy's orders not yet executing (PENDING or WAITING), with their status."""
    result = await session.execute(
        select(col(Order.id), col(Order.status)).where(
            col(Order.parent_id) == strategy_id,
            col(Order.status).in_((OrderStatus.PENDING, OrderStatus.WAITING)),
        )
    )
    return [(str(order_id), OrderStatus(status)) for order_id, status in result]


async def children_page(
    session: AsyncSession, strategy_id: str, before_id: str | None, limit: int
) -> list[Order]:
    """A strategy's orders, newest first; ULIDs sort by creation time, so the id is the cursor."""
    query = (
        select(Order).where(col(Order.parent_id) == strategy_id).order_by(col(Order.id).desc()).limit(limit)
    )
    if before_id is not None:
        query = query.where(col(Order.id) < before_id)
    return list((await session.execute(query)).scalars())


async def record(
    session: AsyncSession, strategy_id: str, change: StrategyChange, *, while_running: bool = False
) -> RecordedStrategy | None:
    """Apply a change and append its event, once per event_key (a retried activity finds
    it recorded: None). Locks the strategy row: its children end concurrently. With
    `while_running`, a strategy that has ended already is left as it is (None)."""
    strategy = (
        await session.execute(select(Strategy).where(col(Strategy.id) == strategy_id).with_for_update())
    ).scalar_one_or_none()
    if strategy is None or (while_running and strategy.status.is_terminal):
        return None
    seen = await session.execute(
        select(col(StrategyEvent.id)).where(
            col(StrategyEvent.strategy_id) == strategy_id,
            col(StrategyEvent.event_key) == change.event_key,
        )
    )
    if seen.first() is not None:
        return None
    now = utcnow()
    patch = change.patch
    if patch.status is not None and not strategy.status.is_terminal:
        strategy.status = patch.status
    strategy.orders_skipped += patch.skipped
    strategy.orders_unfunded += patch.unfunded
    strategy.last_seq += 1
    strategy.updated_at = now
    event = StrategyEvent(
        strategy_id=strategy.id,
        seq=strategy.last_seq,
        status=strategy.status,
        event_key=change.event_key,
        data={"event": change.event, **change.data},
        created_at=now,
    )
    session.add(event)
    await session.flush()
    return RecordedStrategy(strategy, event)


async def events_after(
    session: AsyncSession, strategy_id: str, after_seq: int, limit: int
) -> list[StrategyEvent]:
    result = await session.execute(
        select(StrategyEvent)
        .where(col(StrategyEvent.strategy_id) == strategy_id, col(StrategyEvent.seq) > after_seq)
        .order_by(col(StrategyEvent.seq))
        .limit(limit)
    )
    return list(result.scalars())
