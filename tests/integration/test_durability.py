"""Accepted means it will run: orders whose request died before their workflow started."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings
from core.temporal import connect_temporal
from orders import repository
from orders.events import ActiveOrders, active_key
from orders.placement import request_hash
from orders.reconciler import reconcile_unstarted_orders
from orders.runs import OrderRuns
from orders.schemas import OrderCreate
from storage.database import create_engine, create_sessionmaker
from storage.models import utcnow
from tests.integration.test_orders_api import ORDER, place, wait_terminal
from tests.rows import insert_order

pytestmark = pytest.mark.usefixtures("worker")


async def orphan(sessions: async_sessionmaker[AsyncSession], age: timedelta, key: str | None = None) -> str:
    """An order row as a request that died right after the insert leaves it."""
    order = await insert_order(
        sessions,
        owner="alice",  # the owner of the ALICE key the client sends
        amount=str(ORDER["amount"]),
        slippage_bps=int(str(ORDER["slippage_bps"])),
        created_at=utcnow() - age,
        idempotency_key=key,
        # The hash the API computes for ORDER's body.
        request_hash=request_hash(OrderCreate.model_validate(ORDER)) if key is not None else None,
    )
    return order.id


async def test_the_reconciler_starts_orders_whose_request_died(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    engine = create_engine(settings.database_url)
    temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
    try:
        sessions = create_sessionmaker(engine)
        old = await orphan(sessions, timedelta(minutes=5))
        fresh = await orphan(sessions, timedelta(seconds=0))  # its request may still be running
        assert await reconcile_unstarted_orders(sessions, OrderRuns(temporal)) >= 1
        assert (await wait_terminal(client, old))["status"] == "CONFIRMED"
        async with sessions() as session:
            untouched = await repository.get(session, fresh)
        assert untouched is not None and untouched.accepted_at is None
        async with sessions() as session, session.begin():  # tidy: nothing stays pending
            await repository.delete_unaccepted(session, fresh)
    finally:
        await engine.dispose()


async def test_a_retry_with_the_key_starts_an_order_whose_first_request_died(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    engine = create_engine(settings.database_url)
    try:
        sessions = create_sessionmaker(engine)
        order_id = await orphan(sessions, timedelta(seconds=30), key="died-mid-request")
    finally:
        await engine.dispose()
    retry = await place(client, **{"Idempotency-Key": "died-mid-request"})
    assert retry.status_code == 200 and retry.json()["order_id"] == order_id
    assert (await wait_terminal(client, order_id))["status"] == "CONFIRMED"


async def test_the_active_set_is_rebuilt_from_postgres(settings: Settings) -> None:
    from redis.asyncio import Redis

    engine = create_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    try:
        sessions = create_sessionmaker(engine)
        waiting = await orphan(sessions, timedelta(seconds=0))  # non-terminal, no workflow
        await redis.set(active_key("ord_01J00000000000000000000000"), '{"seq": 1}')  # a stale key
        await redis.delete(active_key(waiting))  # as if Redis had lost it
        await ActiveOrders(redis).sync_from_database(sessions)
        snapshot = await ActiveOrders(redis).get(waiting)
        assert snapshot is not None and snapshot["status"] == "PENDING" and snapshot["seq"] == 1
        async with sessions() as session, session.begin():
            await repository.delete_unaccepted(session, waiting)
        await ActiveOrders(redis).sync_from_database(sessions)
        assert not await redis.exists(active_key(waiting))
    finally:
        await redis.aclose()
        await engine.dispose()
