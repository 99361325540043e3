"""How long orders stalled after each fault of `make chaos`, and what they waited on.

An order's progress is its event log (`order_events.at`). A fault that falls between two
consecutive events of an order stalled that order from the fault until the second event:
that is the order's recovery from the fault. The stall is charged to the first fault in
the gap (the order was progressing until then). When another fault struck within the
promise after it (faults come every 4 s), the two compounded: the second may have hit
the recovery itself (the worker that took the order over), so such stalls are reported
apart; a later fault does not excuse a stall that had already outlasted the promise.
Gaps with no fault in them are the load's own pauses: their worst is the floor the
recoveries are read against.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

NO_FAULT = "no fault (load alone)"


@dataclass(frozen=True)
class Fault:
    kind: str  # "worker", "api", "redis", "postgres"
    at: float  # wall-clock seconds


@dataclass(frozen=True)
class Stall:
    """One order's gap in progress across a fault."""

    order_id: str
    fault: Fault | None  # None: no fault in the gap
    last_progress: float
    resumed: float
    later_faults: tuple[Fault, ...] = ()

    @property
    def recovery_s(self) -> float:
        return self.resumed - (self.fault.at if self.fault is not None else self.last_progress)

    def compounded(self, promise_s: float) -> bool:
        """Another fault struck before this stall had outlasted the promise."""
        return self.fault is not None and any(f.at - self.fault.at <= promise_s for f in self.later_faults)


@dataclass
class KindRecovery:
    """The worst stall charged to one kind of fault."""

    kind: str
    faults: int
    stalled_orders: int = 0
    worst: Stall | None = None  # after this fault alone
    over_promise: int = 0  # stalls after this fault alone that outlasted the promise
    worst_compounded: Stall | None = None  # with another fault soon after
    waited_on: list[str] = field(default_factory=list)  # from the worst order's history

    @property
    def worst_s(self) -> float:
        return round(self.worst.recovery_s, 2) if self.worst is not None else 0.0

    @property
    def worst_compounded_s(self) -> float:
        return round(self.worst_compounded.recovery_s, 2) if self.worst_compounded is not None else 0.0


def stalls(progress: Mapping[str, Sequence[float]], faults: Sequence[Fault]) -> list[Stall]:
    """Every gap between an order's consecutive events, charged to the first fault in it."""
    ordered = sorted(faults, key=lambda f: f.at)
    found: list[Stall] = []
    for order_id, times in progress.items():
        for before, after in itertools.pairwise(sorted(times)):
            inside = [f for f in ordered if before < f.at < after]
            first = inside[0] if inside else None
            found.append(Stall(order_id, first, before, after, tuple(inside[1:])))
    return found


def worst_per_kind(
    progress: Mapping[str, Sequence[float]], faults: Sequence[Fault], promise_s: float
) -> dict[str, KindRecovery]:
    """Per kind of fault (and NO_FAULT), the worst recovery and how many orders stalled."""
    result = {kind: KindRecovery(kind, sum(f.kind == kind for f in faults)) for kind in _kinds(faults)}
    result[NO_FAULT] = KindRecovery(NO_FAULT, 0)
    for stall in stalls(progress, faults):
        kind = stall.fault.kind if stall.fault is not None else NO_FAULT
        entry = result[kind]
        entry.stalled_orders += stall.fault is not None
        if stall.compounded(promise_s):
            if entry.worst_compounded is None or stall.recovery_s > entry.worst_compounded.recovery_s:
                entry.worst_compounded = stall
            continue
        entry.over_promise += stall.recovery_s > promise_s
        if entry.worst is None or stall.recovery_s > entry.worst.recovery_s:
            entry.worst = stall
    return result


def _kinds(faults: Sequence[Fault]) -> list[str]:
    return list(dict.fromkeys(f.kind for f in faults))


async def waited_on(client: Client, stall: Stall) -> list[str]:
    """What the order's workflow history shows between its last progress and its
    recovery: task timeouts, retries, which queue each workflow task went to."""
    handle = client.get_workflow_handle(stall.order_id)
    history = await handle.fetch_history()
    origin = stall.fault.at if stall.fault is not None else stall.last_progress
    lines = []
    for event in history.events:
        at = event.event_time.ToNanoseconds() / 1e9
        if not stall.last_progress - 0.5 <= at <= stall.resumed + 0.5 or _bookkeeping(event):
            continue
        lines.append(f"{at - origin:+6.2f}s {describe(event)}")
    return lines


def _bookkeeping(event: HistoryEvent) -> bool:
    """Events that say nothing about what an order waited on."""
    if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return True
    marker = event.marker_recorded_event_attributes.marker_name
    return event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and marker == "core_patch"


def describe(event: HistoryEvent) -> str:
    """An event in a few words: its type, and the details that say what it waited on."""
    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        attrs = event.workflow_task_scheduled_event_attributes
        sticky = attrs.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
        return f"{name} on {'a sticky queue' if sticky else attrs.task_queue.name}, attempt {attrs.attempt}"
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        return f"{name} by {event.workflow_task_started_event_attributes.identity}"
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        return f"{name} ({TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)})"
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        failure = event.activity_task_timed_out_event_attributes.failure
        timeout = failure.timeout_failure_info.timeout_type
        return f"{name} ({TimeoutType.Name(timeout)})"
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        scheduled = event.activity_task_scheduled_event_attributes
        return f"{name} {scheduled.activity_type.name} on {scheduled.task_queue.name}"
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        started = event.activity_task_started_event_attributes
        return f"{name} attempt {started.attempt} by {started.identity}"
    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        return f"{name} {event.marker_recorded_event_attributes.marker_name}"
    return name


@dataclass
class TaskTimeouts:
    """Workflow task timeouts in the orders' histories: after a worker kill they are the
    recovery working; without one, a worker too starved to answer in time (spurious)."""

    after_worker_kill: int = 0
    spurious: int = 0
    spurious_orders: list[str] = field(default_factory=list)
    # How long a timed-out task then waited on the shared queue for a worker to take it.
    pickup_s: list[float] = field(default_factory=list)


async def task_timeouts(
    client: Client, order_ids: Sequence[str], worker_kills: Sequence[float], task_timeout_s: float
) -> TaskTimeouts:
    found = TaskTimeouts()
    gate = asyncio.Semaphore(8)

    async def one(order_id: str) -> None:
        async with gate:
            history = await client.get_workflow_handle(order_id).fetch_history()
        timed_out_then: float | None = None  # the retry's scheduled time, once seen
        for event in history.events:
            at = event.event_time.ToNanoseconds() / 1e9
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and timed_out_then == 0.0:
                timed_out_then = at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and timed_out_then:
                found.pickup_s.append(at - timed_out_then)
                timed_out_then = None
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                continue
            timed_out_then = 0.0
            # The task started task_timeout_s before it timed out: was its worker killed since?
            if any(at - task_timeout_s - 0.5 <= kill <= at for kill in worker_kills):
                found.after_worker_kill += 1
            else:
                found.spurious += 1
                found.spurious_orders.append(order_id)

    await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return found
