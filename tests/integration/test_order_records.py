"""The one write path for an order's lifecycle, against real PostgreSQL: each transition
is the order row and its event with the next seq, and a repeated write is the first one."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.attempts import run_attempt
from activities.records import OrderRecords
from core.domain import FailureStage, OrderStatus
from core.ids import new_order_id
from devstack import InfraUrls
from market.errors import MarketError, MarketErrorCode
from orders import repository
from orders.events import OrderEvents
from orders.transitions import OrderPatch
from storage.database import create_engine, create_sessionmaker
from storage.redis import connect_redis
from tests.rows import insert_order


@pytest.fixture
async def sessions(infra: InfraUrls) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(infra.database_url, pool_size=20)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def new_order(sessions: async_sessionmaker[AsyncSession]) -> str:
    return (await insert_order(sessions, owner="records")).id


async def record(
    sessions: async_sessionmaker[AsyncSession],
    order_id: str,
    key: str,
    status: OrderStatus | None,
    patch: OrderPatch | None = None,
    data: dict[str, Any] | None = None,
) -> repository.Recorded | None:
    async with sessions() as session:
        return await repository.record_transition(
            session, order_id, key, status, patch or OrderPatch(), data or {}
        )


async def test_a_transition_moves_the_order_and_appends_the_next_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(sessions)
    quotes = [
        {"dex": "raydium", "amount_out": "210.5", "price": "140.33", "fee_bps": 25, "price_impact_bps": 3}
    ]
    recorded = await record(
        sessions,
        order_id,
        "building:1",
        OrderStatus.BUILDING,
        OrderPatch(quotes=quotes, selected_dex="raydium", min_amount_out=Decimal("209.45")),
        {"attempt": 1},
    )
    assert recorded is not None
    order, event = recorded.order, recorded.event
    assert (order.status, order.last_seq, order.selected_dex) == (OrderStatus.BUILDING, 2, "raydium")
    assert order.quotes == quotes and order.min_amount_out == Decimal("209.45")
    assert (event.seq, event.status, event.data) == (2, OrderStatus.BUILDING, {"attempt": 1})

    # A retry event keeps the status; the stored row is what was returned.
    retried = await record(sessions, order_id, "retry:x", None, data={"retry": {"attempt": 1}})
    assert retried is not None and (retried.order.status, retried.event.seq) == (OrderStatus.BUILDING, 3)
    async with sessions() as session:
        stored = await repository.get(session, order_id)
        events = await repository.list_events(session, order_id)
    assert stored is not None and stored.last_seq == 3 and stored.quotes == quotes
    assert [(e.seq, e.event_key) for e in events] == [(1, "created"), (2, "building:1"), (3, "retry:x")]


async def test_a_patch_can_clear_the_failure_reason(sessions: async_sessionmaker[AsyncSession]) -> None:
    order_id = await new_order(sessions)
    await record(
        sessions, order_id, "failed", OrderStatus.FAILED, OrderPatch(failure_reason="no", attempts=3)
    )
    reopened = await record(
        sessions, order_id, "replay", OrderStatus.PENDING, OrderPatch(clear_failure_reason=True, attempts=0)
    )
    assert reopened is not None
    assert (reopened.order.failure_reason, reopened.order.attempts) == (None, 0)


async def test_writing_an_event_key_again_returns_the_first_write_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(sessions)
    first = await record(sessions, order_id, "routing:1", OrderStatus.ROUTING, data={"n": 1})
    again = await record(
        sessions, order_id, "routing:1", OrderStatus.FAILED, OrderPatch(attempts=3), {"n": 2}
    )
    assert first is not None and again is not None
    assert (again.event.seq, again.event.data) == (first.event.seq, {"n": 1})
    assert (again.order.status, again.order.attempts, again.order.last_seq) == (OrderStatus.ROUTING, 0, 2)


async def test_concurrent_writes_make_one_event_per_key_with_gap_free_seqs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(sessions)
    keys = [f"retry:{n}" for n in range(15)]
    # Every key written three times at once, as retried records racing their first try.
    results = await asyncio.gather(
        *(record(sessions, order_id, key, None, data={"key": key}) for key in keys * 3)
    )
    seq_of = {
        key: {r.event.seq for r, k in zip(results, keys * 3, strict=True) if r and k == key} for key in keys
    }
    assert all(len(seqs) == 1 for seqs in seq_of.values()), seq_of
    async with sessions() as session:
        stored = await repository.get(session, order_id)
        events = await repository.list_events(session, order_id)
    assert [e.seq for e in events] == list(range(1, len(keys) + 2))
    assert sorted(e.event_key for e in events[1:]) == sorted(keys)
    assert stored is not None and stored.last_seq == len(keys) + 1


async def test_a_transition_of_an_unknown_order_is_none(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await record(sessions, new_order_id(), "routing:1", OrderStatus.ROUTING) is None


async def test_two_transactions_failing_in_the_same_step_are_two_failure_records_with_their_fees(
    sessions: async_sessionmaker[AsyncSession], infra: InfraUrls
) -> None:
    """A workflow task run again repeats a step's id with a newly built transaction: its
    landed failure paid its own fee, so it is a record of its own; the same transaction
    failing again (a repeated confirm) is still one."""
    order_id = await new_order(sessions)
    records = OrderRecords(sessions, OrderEvents(connect_redis(infra.redis_url)))
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_run_id="run-1", activity_id="8", attempt=1)

    async def fail(signature: str, fee: int) -> None:
        async def landed_and_failed() -> None:
            raise MarketError(
                MarketErrorCode.SLIPPAGE_EXCEEDED,
                "below its minimum",
                stage=FailureStage.CHAIN,
                fee_lamports=fee,
            )

        with pytest.raises(ApplicationError):
            await run_attempt(
                records,
                landed_and_failed(),
                order_id=order_id,
                activity_name="confirm_transaction",
                attempt=1,
                transaction=signature,
            )

    for signature, fee in (("sigA", 16_281), ("sigB", 12_000), ("sigA", 16_281)):
        await env.run(fail, signature, fee)
    async with sessions() as session:
        failures = await repository.list_failures(session, order_id)
    assert sorted(f.fee_lamports for f in failures) == [12_000, 16_281]
