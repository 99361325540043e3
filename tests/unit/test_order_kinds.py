"""The order types' table: every type has a row, and the rows agree with each other."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.domain import OrderType
from core.order_kinds import ORDER_KINDS, Direction, PriceField
from orders.triggers import fires


def test_every_order_type_has_its_rules() -> None:
    assert set(ORDER_KINDS) == set(OrderType)


@pytest.mark.parametrize("order_type", list(OrderType))
def test_a_trigger_fires_one_way_and_only_on_a_waiting_order(order_type: OrderType) -> None:
    kind = ORDER_KINDS[order_type]
    if kind.fires is None:
        return
    assert kind.waits is not None, "a trigger only means something while the order waits"
    assert PriceField.TRIGGER_PRICE in kind.price_fields or kind.requires is PriceField.LIMIT_PRICE
    if not kind.at_market:
        return
    rises = kind.fires is Direction.RISES
    assert fires(order_type, Decimal("101"), Decimal("100")) is rises
    assert fires(order_type, Decimal("99"), Decimal("100")) is not rises
    assert fires(order_type, Decimal("100"), Decimal("100"))  # at the trigger, either way


def test_the_orders_that_execute_at_market_once_triggered() -> None:
    triggered = {OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP}
    assert {t for t, kind in ORDER_KINDS.items() if kind.at_market} == triggered
    assert {t for t, kind in ORDER_KINDS.items() if kind.protects} == {
        OrderType.STOP_LOSS,
        OrderType.TRAILING_STOP,
    }


def test_only_a_market_order_executes_at_once_and_buys_exact_amounts() -> None:
    assert {t for t, kind in ORDER_KINDS.items() if kind.waits is None} == {OrderType.MARKET}
    assert {t for t, kind in ORDER_KINDS.items() if kind.exact_out} == {OrderType.MARKET}
