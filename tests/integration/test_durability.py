"""Accepted means it will run: orders whose request died before their workflow started."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.order_starts import reconcile_unstarted_orders
from core.domain import OrderStatus
from core.ids import new_order_id
from core.settings import Settings
from core.temporal import connect_temporal
from storage import orders as store
from storage.database import create_engine, create_sessionmaker
from storage.models import Order, utcnow
from tests.integration.test_orders_api import ORDER, place, wait_terminal

pytestmark = pytest.mark.usefixtures("worker")


async def orphan(sessions: async_sessionmaker[AsyncSession], age: timedelta, key: str | None = None) -> str:
    """An order row as a request that died right after the insert leaves it."""
    order_id = new_order_id()
    created = utcnow() - age
    request_hash = None
    if key is not None:  # the hash the API computes for ORDER's body
        from api.orders import _request_hash
        from api.schemas import OrderCreate

        request_hash = _request_hash(OrderCreate.model_validate(ORDER))
    async with sessions() as session:
        await store.create_order(
            session,
            Order(
                id=order_id,
                owner="alice",  # the owner of the ALICE key the client sends
                type="market",
                status=OrderStatus.PENDING,
                token_in="SOL",
                token_out="USDC",
                amount=Decimal(ORDER["amount"]),
                slippage_bps=int(ORDER["slippage_bps"]),
                idempotency_key=key,
                request_hash=request_hash,
                created_at=created,
                updated_at=created,
            ),
            {},
        )
    return order_id


async def test_the_reconciler_starts_orders_whose_request_died(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    engine = create_engine(settings.database_url)
    temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
    try:
        sessions = create_sessionmaker(engine)
        old = await orphan(sessions, timedelta(minutes=5))
        fresh = await orphan(sessions, timedelta(seconds=0))  # its request may still be running
        assert await reconcile_unstarted_orders(sessions, temporal) >= 1
        assert (await wait_terminal(client, old))["status"] == "CONFIRMED"
        async with sessions() as session:
            untouched = await store.get_order(session, fresh)
        assert untouched is not None and untouched.accepted_at is None
        async with sessions() as session:  # tidy: start it too, so nothing stays pending
            await store.delete_unaccepted(session, fresh)
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

    from storage.events import ActiveOrders, active_key

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
        async with sessions() as session:
            await store.delete_unaccepted(session, waiting)
        await ActiveOrders(redis).sync_from_database(sessions)
        assert not await redis.exists(active_key(waiting))
    finally:
        await redis.aclose()
        await engine.dispose()
