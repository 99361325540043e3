"""Recording an order's transition: the row and its event in PostgreSQL (the truth), the
reservation given back when the order ends without executing, then the event on Redis.
The order workflow's record activity and a strategy withdrawing a child both come here."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.orders import TransitionRequest
from core.domain import OrderStatus
from orders import repository
from orders.events import OrderEvents
from orders.repository import Recorded
from orders.schemas import EventView, OrderView
from orders.transitions import describe
from wallets import repository as wallet_repository

# An order ending here never executed: what it reserved goes back to its owner.
RELEASING = frozenset({OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.EXPIRED})


async def apply_transition(
    sessions: async_sessionmaker[AsyncSession], events: OrderEvents, request: TransitionRequest
) -> Recorded | None:
    """Record `request` once (its event key), release the order's reservation if the new
    status ends it, publish the event. None when the order does not exist."""
    change = describe(request)
    async with sessions() as session:
        recorded = await repository.record_transition(
            session, request.order_id, request.event_key, change.status, change.patch, change.data
        )
    if recorded is None:
        return None
    if change.status in RELEASING:
        async with sessions() as session, session.begin():
            await wallet_repository.release(session, request.order_id)
    await events.publish(OrderView.of(recorded.order), EventView.of(recorded.event))
    return recorded
