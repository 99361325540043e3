"""The promise that an order interrupted by one fault resumes within RECOVERY_PROMISE
rests on a few timeouts; this pins them against it (`make chaos` measures the same).

Not a timing test: it sums the configured waits on each path back to progress and the
allowance for running the interrupted step again, and checks that the code uses them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bench.recovery import Fault, worst_per_kind
from contracts.policies import (
    HEARTBEAT_TIMEOUT,
    RECORD_MAXIMUM_INTERVAL,
    RECOVERY_PROMISE,
    STICKY_TO_START,
    WORKFLOW_TASK_TIMEOUT,
    FaultKind,
    recovery_bound,
    recovery_paths,
)
from core.domain import OrderStatus, OrderType
from core.ids import new_order_id
from orders.runs import OrderRuns
from storage.models import Order, utcnow
from workflows import order, strategy


@pytest.mark.parametrize("kind", [FaultKind.WORKER, FaultKind.REDIS, FaultKind.POSTGRES])
def test_every_path_back_from_one_fault_fits_the_promise(kind: FaultKind) -> None:
    for path in recovery_paths(kind):
        assert path.seconds <= RECOVERY_PROMISE.total_seconds(), str(path)


def test_a_worker_kill_is_bounded_by_the_workflow_task_timeout() -> None:
    bound = recovery_bound(FaultKind.WORKER)
    assert bound.waits[0].what == "workflow task timeout"
    assert bound.waits[0].seconds == WORKFLOW_TASK_TIMEOUT.total_seconds()
    # The other paths are shorter: a task queued for the dead worker, admission on it.
    assert STICKY_TO_START < WORKFLOW_TASK_TIMEOUT
    assert HEARTBEAT_TIMEOUT < WORKFLOW_TASK_TIMEOUT


def test_child_orders_start_with_the_bounded_task_timeout() -> None:
    assert strategy.CHILD_TASK_TIMEOUT == WORKFLOW_TASK_TIMEOUT


def test_records_retry_a_restarted_store_within_the_bounded_interval() -> None:
    assert order.RECORD_RETRY.maximum_interval == RECORD_MAXIMUM_INTERVAL


def test_a_stall_is_charged_to_the_first_fault_in_its_gap() -> None:
    progress = {"a": [0.0, 1.0, 7.0], "b": [0.0, 2.5], "c": [3.0, 3.5]}
    faults = [Fault("worker", 2.0), Fault("api", 8.0)]
    worst = worst_per_kind(progress, faults, promise_s=5.0)
    assert worst["worker"].worst is not None
    assert worst["worker"].worst.order_id == "a"
    assert worst["worker"].worst_s == 5.0
    assert worst["worker"].stalled_orders == 2
    assert worst["api"].stalled_orders == 0


def test_a_second_fault_within_the_promise_compounds_the_first() -> None:
    progress = {"a": [0.0, 9.0]}
    worst = worst_per_kind(progress, [Fault("worker", 1.0), Fault("worker", 4.0)], promise_s=5.0)
    assert worst["worker"].worst is None
    assert worst["worker"].worst_compounded_s == 8.0
    # A stall that outlasted the promise before the next fault is the first fault's alone.
    late = worst_per_kind(progress, [Fault("worker", 1.0), Fault("redis", 7.0)], promise_s=5.0)
    assert late["worker"].worst_s == 8.0
    assert late["worker"].over_promise == 1


class RecordingTemporal:
    """Stands in for the Temporal client: keeps what a workflow was started with."""

    def __init__(self) -> None:
        self.started: dict[str, Any] = {}

    async def start_workflow(self, *args: Any, **options: Any) -> None:
        self.started = options


async def test_an_order_workflow_starts_with_the_bounded_task_timeout() -> None:
    temporal = RecordingTemporal()
    order = Order(
        id=new_order_id(),
        owner="alice",
        type=OrderType.MARKET,
        status=OrderStatus.PENDING,
        token_in="SOL",
        token_out="USDC",
        amount=Decimal("1.5"),
        slippage_bps=50,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    await OrderRuns(temporal).start(order)  # type: ignore[arg-type]
    assert temporal.started["task_timeout"] == WORKFLOW_TASK_TIMEOUT
