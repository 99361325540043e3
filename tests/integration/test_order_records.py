"""The one write path for an order's lifecycle, against real PostgreSQL: each transition
is the order row and its event with the next seq, and a repeated write is the first one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import OrderStatus
from core.ids import new_order_id
from devstack import InfraUrls
from storage import orders as store
from storage.database import create_engine, create_sessionmaker
from storage.models import Order, OrderEvent, utcnow


@pytest.fixture
async def sessions(infra: InfraUrls) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(infra.database_url, pool_size=20)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def new_order(sessions: async_sessionmaker[AsyncSession]) -> str:
    order_id, now = new_order_id(), utcnow()
    order = Order(
        id=order_id,
        owner="records",
        type="market",
        status=OrderStatus.PENDING,
        token_in="SOL",
        token_out="USDC",
        amount=Decimal("1.5"),
        slippage_bps=50,
        created_at=now,
        updated_at=now,
    )
    async with sessions() as session:
        await store.create_order(session, order, {"type": "market"})
    return order_id


async def record(
    sessions: async_sessionmaker[AsyncSession], transition: store.Transition
) -> tuple[Order, OrderEvent] | None:
    async with sessions() as session:
        return await store.record_transition(session, transition)


async def test_a_transition_moves_the_order_and_appends_the_next_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(sessions)
    quotes = [{"dex": "raydium", "amount_out": "210.5"}]
    recorded = await record(
        sessions,
        store.Transition(
            order_id,
            "building:1",
            OrderStatus.BUILDING,
            {"quotes": quotes, "selected_dex": "raydium", "min_amount_out": Decimal("209.45")},
            {"attempt": 1},
        ),
    )
    assert recorded is not None
    order, event = recorded
    assert (order.status, order.last_seq, order.selected_dex) == (OrderStatus.BUILDING, 2, "raydium")
    assert order.quotes == quotes and order.min_amount_out == Decimal("209.45")
    assert (event.seq, event.status, event.data) == (2, OrderStatus.BUILDING, {"attempt": 1})

    # A retry event keeps the status; the stored row is what was returned.
    retried = await record(
        sessions, store.Transition(order_id, "retry:x", None, {}, {"retry": {"attempt": 1}})
    )
    assert retried is not None and (retried[0].status, retried[1].seq) == (OrderStatus.BUILDING, 3)
    async with sessions() as session:
        stored = await store.get_order(session, order_id)
        events = await store.list_events(session, order_id)
    assert stored is not None and stored.last_seq == 3 and stored.quotes == quotes
    assert [(e.seq, e.event_key) for e in events] == [(1, "created"), (2, "building:1"), (3, "retry:x")]


async def test_writing_an_event_key_again_returns_the_first_write_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(sessions)
    first = await record(sessions, store.Transition(order_id, "routing:1", OrderStatus.ROUTING, {}, {"n": 1}))
    again = await record(
        sessions, store.Transition(order_id, "routing:1", OrderStatus.FAILED, {"attempts": 3}, {"n": 2})
    )
    assert first is not None and again is not None
    assert (again[1].seq, again[1].data) == (first[1].seq, {"n": 1})
    assert (again[0].status, again[0].attempts, again[0].last_seq) == (OrderStatus.ROUTING, 0, 2)


async def test_concurrent_writes_make_one_event_per_key_with_gap_free_seqs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(sessions)
    keys = [f"retry:{n}" for n in range(15)]
    # Every key written three times at once, as retried records racing their first try.
    results = await asyncio.gather(
        *(record(sessions, store.Transition(order_id, key, None, {}, {"key": key})) for key in keys * 3)
    )
    seq_of = {
        key: {r[1].seq for r, k in zip(results, keys * 3, strict=True) if r and k == key} for key in keys
    }
    assert all(len(seqs) == 1 for seqs in seq_of.values()), seq_of
    async with sessions() as session:
        stored = await store.get_order(session, order_id)
        events = await store.list_events(session, order_id)
    assert [e.seq for e in events] == list(range(1, len(keys) + 2))
    assert sorted(e.event_key for e in events[1:]) == sorted(keys)
    assert stored is not None and stored.last_seq == len(keys) + 1


async def test_a_transition_of_an_unknown_order_is_none(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert (
        await record(sessions, store.Transition(new_order_id(), "routing:1", OrderStatus.ROUTING, {}, {}))
        is None
    )
