"""Order rows written straight to PostgreSQL, as a request (or a crash) leaves them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import OrderStatus, OrderType
from core.formatting import to_base_units
from core.ids import new_order_id
from market.tokens import genesis_wallet
from orders import repository
from storage.models import Order, utcnow
from wallets import repository as wallet_repository
from wallets.schemas import Hold
from wallets.service import Wallets


async def insert_order(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner: str = "test",
    amount: str = "1.5",
    slippage_bps: int = 50,
    created_at: datetime | None = None,
    **fields: Any,
) -> Order:
    """A PENDING SOL→USDC market order with its first event and its reservation, as a
    placement stores it; `fields` override columns."""
    created = created_at or utcnow()
    order = Order(
        id=new_order_id(),
        owner=owner,
        type=OrderType.MARKET,
        status=OrderStatus.PENDING,
        token_in="SOL",
        token_out="USDC",
        amount=Decimal(amount),
        slippage_bps=slippage_bps,
        created_at=created,
        updated_at=created,
        **fields,
    )
    async with sessions() as session, session.begin():
        # As placement does: the owner's wallet (funded at first use), the order, its reservation.
        await Wallets(sessions, genesis_wallet()).ensure(session, owner)
        assert await repository.insert_order(session, order, {"type": order.type})
        await wallet_repository.reserve(
            session, order.id, Hold(owner, order.token_in, to_base_units(order.amount, 9))
        )
    return order
