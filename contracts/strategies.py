"""The strategy workflows' contract: their inputs, the signals and updates clients and
the market watcher send them, and their activities' inputs and results.

Like the order workflow's contract, fields only ever grow (with defaults): recorded
histories carry these values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from contracts.orders import OrderInput
from core.domain import OrderStatus, StrategyAction, StrategyStatus, StrategyType

STRATEGY_WORKFLOW = "StrategyWorkflow"
DCA_ROUND_WORKFLOW = "DcaRoundWorkflow"
PAUSE_UPDATE = "pause"
RESUME_UPDATE = "resume"
CANCEL_STRATEGY_UPDATE = "cancel"
# The workflow update each action a client asks for is sent as.
ACTION_UPDATES: dict[StrategyAction, str] = {
    StrategyAction.PAUSE: PAUSE_UPDATE,
    StrategyAction.RESUME: RESUME_UPDATE,
    StrategyAction.CANCEL: CANCEL_STRATEGY_UPDATE,
}
# The market watcher found a bracket leg's condition holding: the parent decides.
LEG_TRIGGERED_SIGNAL = "leg_triggered"
# A DCA round (a scheduled workflow) finished its order.
ROUND_FINISHED_SIGNAL = "round_finished"
# Whether the strategy still places orders (False once cancelled or ending): a DCA round
# asks before it places, since its Schedule may fire after a cancel's 202.
ACCEPTS_ORDERS_QUERY = "accepts_orders"


def dca_schedule_id(strategy_id: str) -> str:
    """The Temporal Schedule of a DCA strategy: found from its id in the Web UI and with
    `temporal schedule list`."""
    return f"dca-{strategy_id}"


def slice_units(total: int, slices: int) -> list[int]:
    """A TWAP's equal slices of `total` base units; the last takes the remainder."""
    base = total // slices
    return [base] * (slices - 1) + [total - base * (slices - 1)]


@dataclass
class ChildOrderSpec:
    """One order a strategy places: the fields of its `POST /orders` body."""

    key: str  # unique within the strategy: a retried placement finds the same order
    type: str  # an OrderType value
    amount: str  # of token_in, human units
    trigger_price: str | None = None
    trailing_bps: int | None = None
    limit_price: str | None = None  # a TWAP slice worse than this is skipped, not placed
    expires_in_s: int | None = None


@dataclass
class StrategyInput:
    strategy_id: str
    type: StrategyType
    owner: str
    token_in: str
    token_out: str
    slippage_bps: int = 50
    # TWAP: the amount in base units of token_in, split into `slices`, one per interval.
    amount_units: int = 0
    decimals_in: int = 9
    slices: int = 0
    interval_s: int = 0
    limit_price: str | None = None
    # Bracket: the amount of each leg and its two conditions; expiry in seconds.
    amount: str | None = None
    take_profit_price: str | None = None
    stop_loss_price: str | None = None
    trailing_bps: int | None = None
    expires_in_s: int | None = None
    # DCA: the amount of each order, the period, how many (None: until cancelled).
    amount_per_order: str | None = None
    every_s: int = 0
    orders: int | None = None
    rounds_finished: int = 0  # carried across continue-as-new
    paused: bool = False  # likewise


# The reason a placement gives when its strategy has ended (a DCA round that was already
# running when the strategy was cancelled): nothing to place, nothing to record.
ENDED = "strategy_ended"


class PlacementOutcome(StrEnum):
    PLACED = "placed"
    SKIPPED = "skipped"  # a TWAP slice whose price is worse than its limit
    REFUSED = "refused"  # could not be placed (no funds, no route, …): a failed child


@dataclass
class PlaceChildRequest:
    strategy_id: str
    owner: str
    token_in: str
    token_out: str
    slippage_bps: int
    spec: ChildOrderSpec


@dataclass
class PlacedChild:
    outcome: PlacementOutcome
    order_id: str | None = None
    input: OrderInput | None = None  # the child workflow's input, when placed
    summary: str = ""
    details: str = ""
    reason: str | None = None  # skipped or refused: why (the price now, the error)


@dataclass
class StrategyRecord:
    """A strategy's status change or event, stored once (event_key) and published."""

    strategy_id: str
    event_key: str
    event: str  # what happened: "order_placed", "slice_skipped", "leg_fired", …
    status: StrategyStatus | None = None  # None: unchanged
    data: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0  # added to orders_skipped
    unfunded: int = 0  # added to orders_unfunded


@dataclass
class ChildFinished:
    order_id: str
    status: OrderStatus


@dataclass
class LegTriggered:
    order_id: str


@dataclass
class DcaRoundInput:
    strategy: StrategyInput


@dataclass
class ScheduleRequest:
    strategy: StrategyInput


@dataclass
class CancelChildRequest:
    order_id: str
