"""Order rows written straight to PostgreSQL, as a request (or a crash) leaves them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import OrderStatus, OrderType
from core.ids import new_order_id
from orders import repository
from storage.models import Order, utcnow


async def insert_order(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner: str = "test",
    amount: str = "1.5",
    slippage_bps: int = 50,
    created_at: datetime | None = None,
    **fields: Any,
) -> Order:
    """A PENDING SOL→USDC market order with its first event; `fields` override columns."""
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
    async with sessions() as session:
        assert await repository.insert_order(session, order, {"type": order.type})
    return order
