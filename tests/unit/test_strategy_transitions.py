"""What each strategy step says: its event key (once per strategy), name, data and row
change, as clients read them in GET /strategies/{id}/events and on /ws/strategies. These
are the words the workflow spelled out before steps were typed: they must not drift."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

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
    StrategyStep,
    TwapSlice,
)
from core.domain import OrderStatus, StrategyStatus
from strategies.transitions import StrategyChange, StrategyPatch, describe

SLICE = TwapSlice(2, 3, "3.333333333")
UNCHANGED = StrategyPatch()

CASES: list[tuple[StrategyStep, StrategyChange]] = [
    (RunStarted(0), StrategyChange("run:0", StrategyEventType.STARTED, UNCHANGED, {})),
    (
        OrderPlaced("slice-2", "ord_1", slice=SLICE),
        StrategyChange(
            "placed:slice-2",
            StrategyEventType.ORDER_PLACED,
            UNCHANGED,
            {"slice": 2, "of": 3, "amount": "3.333333333", "order_id": "ord_1"},
        ),
    ),
    (
        OrderPlaced("take_profit", "ord_2", leg=BracketLeg.TAKE_PROFIT),
        StrategyChange(
            "placed:take_profit",
            StrategyEventType.ORDER_PLACED,
            UNCHANGED,
            {"leg": "take_profit", "order_id": "ord_2"},
        ),
    ),
    (
        OrderPlaced("round-2026-12-07T16:00:00Z", "ord_3"),
        StrategyChange(
            "placed:round-2026-12-07T16:00:00Z",
            StrategyEventType.ORDER_PLACED,
            UNCHANGED,
            {"order_id": "ord_3"},
        ),
    ),
    (
        SliceSkipped("slice-2", SLICE, "the price is 140, worse than the limit 150"),
        StrategyChange(
            "skipped:slice-2",
            StrategyEventType.SLICE_SKIPPED,
            StrategyPatch(skipped=1),
            {
                "slice": 2,
                "of": 3,
                "amount": "3.333333333",
                "reason": "the price is 140, worse than the limit 150",
            },
        ),
    ),
    (
        OrderRefused("slice-2", "insufficient_funds: …", slice=SLICE),
        StrategyChange(
            "refused:slice-2",
            StrategyEventType.ORDER_REFUSED,
            StrategyPatch(unfunded=1),
            {"slice": 2, "of": 3, "amount": "3.333333333", "reason": "insufficient_funds: …"},
        ),
    ),
    (
        OrderRefused("stop", "no_route: …", leg=BracketLeg.STOP),
        StrategyChange(
            "refused:stop",
            StrategyEventType.ORDER_REFUSED,
            StrategyPatch(unfunded=1),
            {"leg": "stop", "reason": "no_route: …"},
        ),
    ),
    (
        OrderRefused("round-1", None),
        StrategyChange(
            "refused:round-1", StrategyEventType.ORDER_REFUSED, StrategyPatch(unfunded=1), {"reason": None}
        ),
    ),
    (
        OrderEnded("ord_1", OrderStatus.CONFIRMED),
        StrategyChange(
            "order_ended:ord_1",
            StrategyEventType.ORDER_ENDED,
            UNCHANGED,
            {"order_id": "ord_1", "order_status": "CONFIRMED"},
        ),
    ),
    (
        OrderWithdrawn("ord_1"),
        StrategyChange(
            "withdrawn:ord_1",
            StrategyEventType.ORDER_WITHDRAWN,
            UNCHANGED,
            {"order_id": "ord_1", "reason": "the strategy was cancelled while it was placed"},
        ),
    ),
    (
        LegFired("ord_2"),
        StrategyChange("fired", StrategyEventType.LEG_FIRED, UNCHANGED, {"order_id": "ord_2"}),
    ),
    (
        Paused(1),
        StrategyChange("paused:1", StrategyEventType.PAUSED, StrategyPatch(StrategyStatus.PAUSED), {}),
    ),
    (
        Resumed(2),
        StrategyChange("resumed:2", StrategyEventType.RESUMED, StrategyPatch(StrategyStatus.RUNNING), {}),
    ),
    (
        StrategyEnded(StrategyStatus.COMPLETED),
        StrategyChange("end:COMPLETED", StrategyEventType.ENDED, StrategyPatch(StrategyStatus.COMPLETED), {}),
    ),
    (
        # An orphan's end (the reconciler's, or a cancel's): the same key as the workflow's
        # own end, so whichever comes second finds it recorded.
        StrategyEnded(StrategyStatus.FAILED, "workflow terminated"),
        StrategyChange(
            "end:FAILED",
            StrategyEventType.ENDED,
            StrategyPatch(StrategyStatus.FAILED),
            {"reason": "workflow terminated"},
        ),
    ),
]


@pytest.mark.parametrize(("step", "expected"), CASES, ids=[type(step).__name__ for step, _ in CASES])
def test_a_step_says_what_clients_read(step: StrategyStep, expected: StrategyChange) -> None:
    change = describe(StrategyRecord.of("stg_1", step))
    assert change == expected
    assert json.loads(json.dumps(change.data)) == change.data  # stored as JSONB as it is


@pytest.mark.parametrize(("step", "expected"), CASES, ids=[type(step).__name__ for step, _ in CASES])
def test_a_step_crosses_temporal_as_it_left(step: StrategyStep, expected: StrategyChange) -> None:
    """The activity reads the record the workflow sent (enums, nested slices included)."""
    converter = DataConverter.default.payload_converter
    sent = StrategyRecord.of("stg_1", step)
    (received,) = converter.from_payloads(converter.to_payloads([sent]), [StrategyRecord])
    assert received == sent and received.step == step
    assert describe(received) == expected


HISTORIES = Path(__file__).parents[1] / "histories" / "paths"


def _earlier_records() -> list[dict[str, Any]]:
    """The record_strategy inputs in the recorded strategy histories of before typed steps."""
    found: list[dict[str, Any]] = []
    for path in sorted(HISTORIES.glob("*strategy_*.json")):
        for event in json.loads(path.read_text())["events"]:
            attributes = event.get("activityTaskScheduledEventAttributes")
            if attributes and attributes["activityType"]["name"] == "record_strategy":
                (payload,) = attributes["input"]["payloads"]
                record = json.loads(base64.b64decode(payload["data"]))
                if record.get("event"):
                    found.append(record)
    return found


def test_a_record_of_before_typed_steps_is_stored_as_it_says() -> None:
    """A workflow of the earlier version still schedules records in their old shape (its
    activities retried across a deploy): the activity stores them as they were meant."""
    earlier = _earlier_records()
    assert {record["event"] for record in earlier} >= {
        "started",
        "order_placed",
        "ended",
        "paused",
        "leg_fired",
    }
    converter = DataConverter.default.payload_converter
    for record in earlier:
        payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(record).encode())
        (decoded,) = converter.from_payloads([payload], [StrategyRecord])
        assert decoded.step is None
        change = describe(decoded)
        assert (change.event_key, str(change.event), change.data) == (
            record["event_key"],
            record["event"],
            record["data"],
        )
        status = StrategyStatus(record["status"]) if record["status"] else None
        assert change.patch == StrategyPatch(status, record["skipped"], record["unfunded"])
