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


class StrategyEventType(StrEnum):
    """What a strategy event says happened: its `event`, as clients read it."""

    CREATED = "created"
    STARTED = "started"
    ORDER_PLACED = "order_placed"
    SLICE_SKIPPED = "slice_skipped"
    ORDER_REFUSED = "order_refused"
    ORDER_ENDED = "order_ended"
    ORDER_WITHDRAWN = "order_withdrawn"
    LEG_FIRED = "leg_fired"
    PAUSED = "paused"
    RESUMED = "resumed"
    ENDED = "ended"


class BracketLeg(StrEnum):
    """A bracket's two orders; also their keys within the strategy."""

    TAKE_PROFIT = "take_profit"
    STOP = "stop"


# The typed steps a strategy workflow reports; strategies/transitions.py says what each
# changes on the strategy row and in its event. `key` is the child's key within the
# strategy (ChildOrderSpec.key).


@dataclass(frozen=True)
class TwapSlice:
    number: int  # from 1
    of: int
    amount: str  # of token_in, human units (a skipped slice's carried amount included)


@dataclass(frozen=True)
class RunStarted:
    """A run of the workflow began (a DCA's continue-as-new starts another)."""

    rounds_finished: int


@dataclass(frozen=True)
class OrderPlaced:
    key: str
    order_id: str
    slice: TwapSlice | None = None  # a TWAP's
    leg: BracketLeg | None = None  # a bracket's


@dataclass(frozen=True)
class SliceSkipped:
    key: str
    slice: TwapSlice
    reason: str | None


@dataclass(frozen=True)
class OrderRefused:
    """A child the placement refused (no funds, no route, …): counted as unfunded."""

    key: str
    reason: str | None
    slice: TwapSlice | None = None
    leg: BracketLeg | None = None


@dataclass(frozen=True)
class OrderEnded:
    order_id: str
    order_status: OrderStatus


@dataclass(frozen=True)
class OrderWithdrawn:
    """Stored while the strategy's cancel came: never started."""

    order_id: str


@dataclass(frozen=True)
class LegFired:
    order_id: str


@dataclass(frozen=True)
class Paused:
    change: int  # the workflow's count of pauses and resumes, this one included


@dataclass(frozen=True)
class Resumed:
    change: int


@dataclass(frozen=True)
class StrategyEnded:
    status: StrategyStatus
    reason: str | None = None  # an orphan's: why its workflow can no longer run it


StrategyStep = (
    RunStarted
    | OrderPlaced
    | SliceSkipped
    | OrderRefused
    | OrderEnded
    | OrderWithdrawn
    | LegFired
    | Paused
    | Resumed
    | StrategyEnded
)


@dataclass
class StrategyRecord:
    """Record a strategy's step: its event (once per event key) and its row's change,
    then publish. Exactly one step field is set (`StrategyRecord.of`).

    `event_key` … `unfunded` are what records carried before typed steps: activities
    scheduled by a workflow of that version still arrive in that shape, so they stay."""

    strategy_id: str
    event_key: str = ""
    event: str = ""
    status: StrategyStatus | None = None
    data: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0
    unfunded: int = 0
    started: RunStarted | None = None
    placed: OrderPlaced | None = None
    slice_skipped: SliceSkipped | None = None
    refused: OrderRefused | None = None
    order_ended: OrderEnded | None = None
    withdrawn: OrderWithdrawn | None = None
    fired: LegFired | None = None
    paused: Paused | None = None
    resumed: Resumed | None = None
    ended: StrategyEnded | None = None

    @classmethod
    def of(cls, strategy_id: str, step: StrategyStep) -> StrategyRecord:
        match step:
            case RunStarted():
                return cls(strategy_id, started=step)
            case OrderPlaced():
                return cls(strategy_id, placed=step)
            case SliceSkipped():
                return cls(strategy_id, slice_skipped=step)
            case OrderRefused():
                return cls(strategy_id, refused=step)
            case OrderEnded():
                return cls(strategy_id, order_ended=step)
            case OrderWithdrawn():
                return cls(strategy_id, withdrawn=step)
            case LegFired():
                return cls(strategy_id, fired=step)
            case Paused():
                return cls(strategy_id, paused=step)
            case Resumed():
                return cls(strategy_id, resumed=step)
            case StrategyEnded():
                return cls(strategy_id, ended=step)

    @property
    def step(self) -> StrategyStep | None:
        """The typed step; None for a record of the earlier shape."""
        steps = (
            self.started,
            self.placed,
            self.slice_skipped,
            self.refused,
            self.order_ended,
            self.withdrawn,
            self.fired,
            self.paused,
            self.resumed,
            self.ended,
        )
        return next((step for step in steps if step is not None), None)


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
