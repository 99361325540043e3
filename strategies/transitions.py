"""What each strategy step changes on the strategy row and says in its event: the typed
steps a strategy workflow reports (contracts/strategies.py) turned into the row's change,
the event's key, name and data.

Pure: no I/O. The event keys are what makes a retried record find its event stored: they
never change for a step already recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.strategies import (
    BracketLeg,
    LegFired,
    OrderEnded,
    OrderPlaced,
    OrderRefused,
    OrderWithdrawn,
    Paused,
    Resumed,
    RunStarted,
    SliceSkipped,
    StrategyEnded,
    StrategyEventType,
    StrategyRecord,
    TwapSlice,
)
from core.domain import StrategyStatus

WITHDRAWN_REASON = "the strategy was cancelled while it was placed"


@dataclass(frozen=True)
class StrategyPatch:
    """The strategy columns a step changes."""

    status: StrategyStatus | None = None  # None: unchanged (an ended strategy never changes)
    skipped: int = 0  # added to orders_skipped
    unfunded: int = 0  # added to orders_unfunded


@dataclass(frozen=True)
class StrategyChange:
    """One step, ready to store: its event key (once per strategy), event name, row change
    and event data."""

    event_key: str
    event: StrategyEventType
    patch: StrategyPatch
    data: dict[str, Any]


def describe(record: StrategyRecord) -> StrategyChange:
    """The event and row change of the step `record` reports."""
    match record.step:
        case RunStarted(rounds_finished=rounds):
            return _change(f"run:{rounds}", StrategyEventType.STARTED)
        case OrderPlaced() as placed:
            return _change(
                f"placed:{placed.key}",
                StrategyEventType.ORDER_PLACED,
                data={**_where(placed.slice, placed.leg), "order_id": placed.order_id},
            )
        case SliceSkipped() as skipped:
            return _change(
                f"skipped:{skipped.key}",
                StrategyEventType.SLICE_SKIPPED,
                StrategyPatch(skipped=1),
                {**_where(skipped.slice, None), "reason": skipped.reason},
            )
        case OrderRefused() as refused:
            return _change(
                f"refused:{refused.key}",
                StrategyEventType.ORDER_REFUSED,
                StrategyPatch(unfunded=1),
                {**_where(refused.slice, refused.leg), "reason": refused.reason},
            )
        case OrderEnded(order_id=order_id, order_status=status):
            return _change(
                f"order_ended:{order_id}",
                StrategyEventType.ORDER_ENDED,
                data={"order_id": order_id, "order_status": str(status)},
            )
        case OrderWithdrawn(order_id=order_id):
            return _change(
                f"withdrawn:{order_id}",
                StrategyEventType.ORDER_WITHDRAWN,
                data={"order_id": order_id, "reason": WITHDRAWN_REASON},
            )
        case LegFired(order_id=order_id):
            return _change("fired", StrategyEventType.LEG_FIRED, data={"order_id": order_id})
        case Paused(change=n):
            return _change(f"paused:{n}", StrategyEventType.PAUSED, StrategyPatch(StrategyStatus.PAUSED))
        case Resumed(change=n):
            return _change(f"resumed:{n}", StrategyEventType.RESUMED, StrategyPatch(StrategyStatus.RUNNING))
        case StrategyEnded(status=status, reason=reason):
            return _change(
                f"end:{status}",
                StrategyEventType.ENDED,
                StrategyPatch(status),
                {"reason": reason} if reason is not None else {},
            )
        case None:  # a record of before typed steps: it says it all itself
            return _change(
                record.event_key,
                StrategyEventType(record.event),
                StrategyPatch(record.status, record.skipped, record.unfunded),
                record.data,
            )


def _change(
    event_key: str,
    event: StrategyEventType,
    patch: StrategyPatch | None = None,
    data: dict[str, Any] | None = None,
) -> StrategyChange:
    return StrategyChange(event_key, event, patch or StrategyPatch(), data or {})


def _where(twap_slice: TwapSlice | None, leg: BracketLeg | None) -> dict[str, Any]:
    """Which of the strategy's children: a TWAP's slice, a bracket's leg (a DCA's round
    is its order)."""
    if twap_slice is not None:
        return {"slice": twap_slice.number, "of": twap_slice.of, "amount": twap_slice.amount}
    if leg is not None:
        return {"leg": str(leg)}
    return {}
