"""An operator's replay of a failed order, against real PostgreSQL, when Temporal
refuses the new run: the order stays as it was and its funds are not held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from accounts.keys import Principal
from core.domain import OrderStatus, ReservationState
from core.errors import ServiceUnavailable
from devstack import InfraUrls
from orders import repository
from orders.runs import OrderRuns
from orders.service import OrderService
from orders.transitions import OrderPatch
from storage.database import create_engine, create_sessionmaker
from storage.models import Order, WalletBalance
from tests.rows import insert_order
from wallets import repository as wallet_repository
from wallets.service import Wallets

OPERATOR = Principal(key_id="test-operator", owner="operator", operator=True)


class ClosedRunRuns(OrderRuns):
    """A failed order's workflow has completed; starting a new run fails while `refuse`."""

    def __init__(self) -> None:
        super().__init__(cast(Client, None))
        self.refuse = True
        self.started: list[int] = []

    async def state(self, order_id: str) -> str:
        return "COMPLETED"

    async def start(self, order: Order, replay: int = 0) -> None:
        if self.refuse:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        self.started.append(replay)


@pytest.fixture
async def sessions(infra: InfraUrls) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(infra.database_url, pool_size=5)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def sol_reserved(sessions: async_sessionmaker[AsyncSession], owner: str) -> int:
    async with sessions() as session:
        row = await session.get(WalletBalance, (owner, "SOL"))
        assert row is not None
        return int(row.reserved)


async def failed_order(sessions: async_sessionmaker[AsyncSession], owner: str) -> Order:
    """A FAILED order whose reservation was released, as the workflow leaves it."""
    order = await insert_order(sessions, owner=owner, amount="2")
    assert await Wallets(sessions, {}).release(order.id)
    async with sessions() as session:
        recorded = await repository.record_transition(
            session, order.id, "failed", OrderStatus.FAILED, OrderPatch(failure_reason="no route"), {}
        )
    assert recorded is not None
    return recorded.order


async def test_a_replay_whose_start_fails_leaves_the_order_failed_and_its_funds_free(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = "replay-refused"
    order = await failed_order(sessions, owner)
    free = await sol_reserved(sessions, owner)
    runs = ClosedRunRuns()
    service = OrderService(sessions, runs)

    with pytest.raises(ServiceUnavailable):
        await service.replay(OPERATOR, order.id)

    assert await sol_reserved(sessions, owner) == free
    async with sessions() as session:
        held = await wallet_repository.reservation(session, order.id)
        stored = await repository.get(session, order.id)
    assert held is not None and held.state is ReservationState.RELEASED
    assert stored is not None
    assert (stored.status, stored.last_seq, stored.updated_at) == (
        OrderStatus.FAILED,
        order.last_seq,
        order.updated_at,
    )

    # Once Temporal takes it, the replay reserves the order's funds again, and runs it.
    runs.refuse = False
    assert await service.replay(OPERATOR, order.id) == "started a new run of its workflow"
    assert await sol_reserved(sessions, owner) == free + 2 * 10**9
    assert runs.started == [1]
