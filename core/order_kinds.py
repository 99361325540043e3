"""What each order type is, as data: whether and on what it waits, which price fields it
takes, which way its trigger fires, what it may do. Validation, placement, the watcher,
the transitions and the order workflow read this table instead of branching on the type;
a new order type is a row here (and its checks, if any are new).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.domain import OrderType


class WaitKind(StrEnum):
    """What a waiting order waits for (carried in its WAITING event)."""

    LIMIT_PRICE = "limit_price"
    POOL_OPEN = "pool_open"
    TRIGGER_PRICE = "trigger_price"  # stop-loss (falls to it) or take-profit (rises to it)
    TRAILING = "trailing"  # trailing stop: trailing_bps below the best price seen


class Direction(StrEnum):
    """Which move of the price fires a trigger."""

    RISES = "rises"  # fires at or above the trigger
    FALLS = "falls"  # fires at or below the trigger


class PriceField(StrEnum):
    LIMIT_PRICE = "limit_price"
    TRIGGER_PRICE = "trigger_price"


@dataclass(frozen=True)
class OrderKind:
    """One order type's rules.

    `waits`: what it waits for (None: it executes at once). `requires`: the price field
    it must carry; `allows`: one it may carry (a trailing stop's floor). `fires`: which
    move fires its trigger. `at_market`: once triggered it executes at market (it may
    fill below its trigger), where a limit order never fills below its limit.
    """

    waits: WaitKind | None = None
    requires: PriceField | None = None
    allows: PriceField | None = None
    fires: Direction | None = None
    at_market: bool = False
    trails: bool = False  # takes trailing_bps
    protects: bool = False  # limits a loss: the watcher gives it its owner's first turns
    exact_out: bool = False  # may buy an exact amount out
    listed_token_out: bool = True  # a sniper may name a token not listed yet

    @property
    def price_fields(self) -> frozenset[PriceField]:
        return frozenset(field for field in (self.requires, self.allows) if field is not None)


ORDER_KINDS: dict[OrderType, OrderKind] = {
    OrderType.MARKET: OrderKind(exact_out=True),
    OrderType.LIMIT: OrderKind(WaitKind.LIMIT_PRICE, requires=PriceField.LIMIT_PRICE, fires=Direction.RISES),
    OrderType.SNIPER: OrderKind(WaitKind.POOL_OPEN, listed_token_out=False),
    OrderType.STOP_LOSS: OrderKind(
        WaitKind.TRIGGER_PRICE,
        requires=PriceField.TRIGGER_PRICE,
        fires=Direction.FALLS,
        at_market=True,
        protects=True,
    ),
    OrderType.TAKE_PROFIT: OrderKind(
        WaitKind.TRIGGER_PRICE, requires=PriceField.TRIGGER_PRICE, fires=Direction.RISES, at_market=True
    ),
    OrderType.TRAILING_STOP: OrderKind(
        WaitKind.TRAILING,
        allows=PriceField.TRIGGER_PRICE,
        fires=Direction.FALLS,
        at_market=True,
        trails=True,
        protects=True,
    ),
}


def kind_of(order_type: OrderType) -> OrderKind:
    return ORDER_KINDS[order_type]
