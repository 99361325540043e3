"""Every path of the strategy workflow on the time-skipping server: its activities are
scripted and its child orders are stand-ins that fill at once (market) or wait for the
strategy's signal or cancel (legs). Hours of TWAP intervals and DCA periods pass in
milliseconds."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.orders import CANCEL_UPDATE, ORDER_WORKFLOW, TRIGGER_SIGNAL, OrderInput, OrderOutcome, Trigger
from contracts.strategies import (
    ACCEPTS_ORDERS_QUERY,
    LEG_TRIGGERED_SIGNAL,
    CancelChildRequest,
    DcaRoundInput,
    LegTriggered,
    PlaceChildRequest,
    PlacedChild,
    PlacementOutcome,
    ScheduleRequest,
    StrategyInput,
    StrategyRecord,
)
from core.domain import OrderStatus, OrderType, StrategyStatus, StrategyType
from core.temporal import ORDERS_TASK_QUEUE
from strategies.transitions import StrategyChange, describe
from tests.workflows.harness import PATHS, RECORD_AS, RECORD_ENV, SOL, time_skipping
from workflows.strategy import DcaRoundWorkflow, StrategyWorkflow


@workflow.defn(name=ORDER_WORKFLOW, sandboxed=False)
class StandInOrder:
    """A child order: a market order fills at once; a leg waits for its trigger (from
    the strategy), a cancel, or its expiry."""

    def __init__(self) -> None:
        self._fired = False
        self._cancelled = False

    @workflow.signal(name=TRIGGER_SIGNAL)
    def trigger(self, trigger: Trigger) -> None:
        self._fired = True

    @workflow.update(name=CANCEL_UPDATE)
    def cancel(self) -> bool:
        self._cancelled = not self._fired
        return self._cancelled

    @workflow.run
    async def run(self, order: OrderInput) -> OrderOutcome:
        if order.order_type is OrderType.MARKET:
            return OrderOutcome(order.order_id, OrderStatus.CONFIRMED)
        try:
            await workflow.wait_condition(
                lambda: self._fired or self._cancelled,
                timeout=timedelta(seconds=(order.expires_at or 0) - workflow.now().timestamp()),
            )
        except TimeoutError:
            return OrderOutcome(order.order_id, OrderStatus.EXPIRED)
        return OrderOutcome(order.order_id, OrderStatus.CONFIRMED if self._fired else OrderStatus.CANCELLED)


@dataclass
class StrategyWorld:
    client: Client
    skip_slices: set[str] = field(default_factory=set)  # keys placed as SKIPPED
    placed: list[PlacedChild] = field(default_factory=list)
    records: list[StrategyChange] = field(default_factory=list)  # as the record activity stores them
    recorded_by: list[str] = field(default_factory=list)  # each record's workflow id
    cancelled: list[str] = field(default_factory=list)
    schedule: list[str] = field(default_factory=list)
    placed_amounts: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    # A placement of one of these keys waits for `release` (after saying so on `holding`).
    hold: set[str] = field(default_factory=set)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[str]:
        return [str(r.event) for r in self.records]

    @activity.defn(name="place_child")
    async def place_child(self, request: PlaceChildRequest) -> PlacedChild:
        spec = request.spec
        if spec.key in self.hold:
            self.holding.set()
            await self.release.wait()
        if spec.key in self.skip_slices:
            return PlacedChild(PlacementOutcome.SKIPPED, reason="worse than the limit")
        self.placed_amounts.append(spec.amount)
        order_id = f"{request.strategy_id}-{spec.key}"
        now = activity.info().current_attempt_scheduled_time.timestamp()
        placed = PlacedChild(
            PlacementOutcome.PLACED,
            order_id=order_id,
            input=OrderInput(
                order_id=order_id,
                order_type=OrderType(spec.type),
                token_in=request.token_in,
                token_out=request.token_out,
                amount_in=SOL,
                slippage_bps=request.slippage_bps,
                decimals_in=9,
                decimals_out=6,
                trigger_price=spec.trigger_price,
                expires_at=now + spec.expires_in_s if spec.expires_in_s else None,
            ),
            summary=spec.key,
        )
        self.placed.append(placed)
        return placed

    @activity.defn(name="record_strategy")
    async def record_strategy(self, record: StrategyRecord) -> None:
        assert record.step is not None, "a workflow of this version records typed steps"
        self.records.append(describe(record))
        self.recorded_by.append(activity.info().workflow_id or "")

    @activity.defn(name="cancel_child")
    async def cancel_child(self, request: CancelChildRequest) -> bool:
        self.cancelled.append(request.order_id)
        handle = self.client.get_workflow_handle(request.order_id)
        try:
            accepted: bool = await handle.execute_update(CANCEL_UPDATE, result_type=bool)
        except RPCError:  # as OrderRuns: a leg that ended meanwhile takes no update
            if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                raise
            return False
        return accepted

    @activity.defn(name="withdraw_child")
    async def withdraw_child(self, request: CancelChildRequest) -> None:
        self.withdrawn.append(request.order_id)

    @activity.defn(name="create_schedule")
    async def create_schedule(self, request: ScheduleRequest) -> None:
        self.schedule.append("created")

    @activity.defn(name="pause_schedule")
    async def pause_schedule(self, request: ScheduleRequest) -> None:
        self.schedule.append("paused")

    @activity.defn(name="resume_schedule")
    async def resume_schedule(self, request: ScheduleRequest) -> None:
        self.schedule.append("resumed")

    @activity.defn(name="delete_schedule")
    async def delete_schedule(self, request: ScheduleRequest) -> None:
        self.schedule.append("deleted")


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping() as env:
        yield env


@pytest.fixture
async def world(env: WorkflowEnvironment) -> AsyncIterator[StrategyWorld]:
    world = StrategyWorld(env.client)
    async with Worker(
        env.client,
        task_queue=ORDERS_TASK_QUEUE,
        workflows=[StrategyWorkflow, DcaRoundWorkflow, StandInOrder],
        activities=[
            world.place_child,
            world.record_strategy,
            world.cancel_child,
            world.withdraw_child,
            world.create_schedule,
            world.pause_schedule,
            world.resume_schedule,
            world.delete_schedule,
        ],
    ):
        yield world


async def start(client: Client, strategy: StrategyInput) -> WorkflowHandle[StrategyWorkflow, StrategyStatus]:
    handle = await client.start_workflow(
        StrategyWorkflow.run, strategy, id=strategy.strategy_id, task_queue=ORDERS_TASK_QUEUE
    )
    return handle


async def finish(
    world: StrategyWorld, handle: WorkflowHandle[StrategyWorkflow, StrategyStatus]
) -> StrategyStatus:
    """The strategy's end; its events are those its recorded history recorded."""
    status = await handle.result()
    recording = PATHS / f"{RECORD_AS.get()}.json"
    if os.environ.get(RECORD_ENV) and RECORD_AS.get():
        PATHS.mkdir(exist_ok=True)
        history = await handle.fetch_history()
        recording.write_text(history.to_json())
    elif recording.exists():
        ours = [
            change for change, by in zip(world.records, world.recorded_by, strict=True) if by == handle.id
        ]
        recorded = recorded_changes(recording)
        assert sorted(map(_event_row, ours)) == sorted(map(_event_row, recorded)), (
            "the events differ from the recorded run's; if what an event says changed on purpose, "
            f"record again: {RECORD_ENV}=1 pytest tests/workflows"
        )
    return status


def recorded_changes(recording: Path) -> list[StrategyChange]:
    """What the strategy workflow asked the record activity to store in a recorded run
    (of whichever version recorded it), as the activity stores it today."""
    text = recording.read_text()
    history = WorkflowHistory.from_json(recording.stem, text)
    converter = DataConverter.default.payload_converter
    return [
        describe(
            converter.from_payloads(
                event.activity_task_scheduled_event_attributes.input.payloads, [StrategyRecord]
            )[0]
        )
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == "record_strategy"
    ]


def _event_row(change: StrategyChange) -> tuple[str, str, str, str, int, int]:
    """A stored event as clients read it: key, name, status, data, counters. Without a
    child's end status: a leg's race between its expiry and its cancel is the stand-in
    order's timing, not the strategy's (that a status is said as it is: the unit tests)."""
    patch = change.patch
    data = json.dumps({k: v for k, v in change.data.items() if k != "order_status"}, sort_keys=True)
    return change.event_key, str(change.event), str(patch.status), data, patch.skipped, patch.unfunded


def twap(strategy_id: str, **fields: object) -> StrategyInput:
    values: dict[str, object] = {
        "amount_units": 10 * SOL + 1,
        "slices": 3,
        "interval_s": 3600,
        **fields,
    }
    return StrategyInput(strategy_id, StrategyType.TWAP, "alice", "SOL", "USDC", **values)  # type: ignore[arg-type]


def bracket(strategy_id: str, expires_in_s: int = 86_400) -> StrategyInput:
    return StrategyInput(
        strategy_id,
        StrategyType.BRACKET,
        "alice",
        "SOL",
        "USDC",
        amount="1",
        take_profit_price="160",
        stop_loss_price="140",
        expires_in_s=expires_in_s,
    )


async def test_strategy_twap_places_every_slice_on_its_interval(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    before = await env.get_current_time()
    status = await finish(world, await start(env.client, twap("stg-twap")))
    assert status is StrategyStatus.COMPLETED
    # Equal slices, the last with the remainder; the intervals passed on durable timers.
    assert world.placed_amounts == ["3.333333333", "3.333333333", "3.333333335"]
    assert await env.get_current_time() - before >= timedelta(hours=2)
    assert world.events().count("order_placed") == 3 and world.events().count("order_ended") == 3
    assert world.records[-1].event == "ended" and world.records[-1].patch.status is StrategyStatus.COMPLETED


async def test_strategy_twap_carries_a_skipped_slice_to_the_next(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    world.skip_slices = {"slice-1"}
    status = await finish(
        world, await start(env.client, twap("stg-twap-skip", amount_units=2 * SOL, slices=2))
    )
    assert status is StrategyStatus.COMPLETED
    assert world.placed_amounts == ["2"]  # the skipped slice's amount went with the next
    skipped = [r for r in world.records if r.event == "slice_skipped"]
    assert len(skipped) == 1 and skipped[0].patch.skipped == 1


async def test_strategy_twap_cancelled_places_nothing_more(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    handle = await start(env.client, twap("stg-twap-cancel", slices=5))
    while not world.placed:
        await asyncio.sleep(0.01)
    assert await handle.query(ACCEPTS_ORDERS_QUERY, result_type=bool)
    assert await handle.execute_update("cancel", result_type=bool)
    # From the 202 on it says so (a DCA's rounds ask before they place).
    assert not await handle.query(ACCEPTS_ORDERS_QUERY, result_type=bool)
    assert await finish(world, handle) is StrategyStatus.CANCELLED
    assert len(world.placed) == 1


async def test_strategy_twap_cancelled_while_a_slice_is_placed_starts_no_order(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    world.hold = {"slice-1"}
    handle = await start(env.client, twap("stg-twap-cancel-placing"))
    await world.holding.wait()  # the slice's placement is in flight
    assert await handle.execute_update("cancel", result_type=bool)  # the client's 202
    world.release.set()  # the placement stores its order after all
    assert await finish(world, handle) is StrategyStatus.CANCELLED
    order_id = "stg-twap-cancel-placing-slice-1"
    assert [p.order_id for p in world.placed] == [order_id]
    # The order it stored is withdrawn, never started.
    assert world.withdrawn == [order_id]
    with pytest.raises(RPCError):
        await env.client.get_workflow_handle(order_id).describe()
    assert "order_placed" not in world.events()
    assert [r.data["order_id"] for r in world.records if r.event == "order_withdrawn"] == [order_id]


async def test_strategy_bracket_cancelled_while_a_leg_is_placed_starts_no_leg(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    world.hold = {"stop"}
    handle = await start(env.client, bracket("stg-bracket-cancel-placing"))
    await world.holding.wait()  # the take-profit leg runs; the stop leg is being placed
    assert await handle.execute_update("cancel", result_type=bool)
    world.release.set()
    assert await finish(world, handle) is StrategyStatus.CANCELLED
    take, stop = (p.order_id for p in world.placed)
    assert take is not None and stop is not None
    assert world.withdrawn == [stop] and world.cancelled == [take]
    with pytest.raises(RPCError):  # the stop leg never started
        await env.client.get_workflow_handle(stop).describe()
    assert await env.client.get_workflow_handle(take, result_type=OrderOutcome).result() == OrderOutcome(
        take, OrderStatus.CANCELLED
    )
    ended = [r.data for r in world.records if r.event == "order_ended"]
    assert ended == [{"order_id": take, "order_status": "CANCELLED"}]


async def test_strategy_bracket_fires_one_leg_when_both_trigger_at_once(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    handle = await start(env.client, bracket("stg-bracket"))
    while "placed:stop" not in {r.event_key for r in world.records}:  # both legs started
        await asyncio.sleep(0.01)
    take, stop = (p.order_id for p in world.placed)
    assert take is not None and stop is not None
    # One price move crossed both: the watcher signals both legs in the same tick.
    await handle.signal(LEG_TRIGGERED_SIGNAL, LegTriggered(stop))
    await handle.signal(LEG_TRIGGERED_SIGNAL, LegTriggered(take))
    assert await finish(world, handle) is StrategyStatus.COMPLETED
    fired = [r.data["order_id"] for r in world.records if r.event == "leg_fired"]
    assert fired == [stop] and world.cancelled == [take]
    assert await env.client.get_workflow_handle(take, result_type=OrderOutcome).result() == OrderOutcome(
        take, OrderStatus.CANCELLED
    )
    assert await env.client.get_workflow_handle(stop, result_type=OrderOutcome).result() == OrderOutcome(
        stop, OrderStatus.CONFIRMED
    )


async def test_strategy_bracket_expires_when_neither_fires(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    status = await finish(world, await start(env.client, bracket("stg-bracket-expiry", expires_in_s=3600)))
    assert status is StrategyStatus.EXPIRED
    assert [r.data["order_id"] for r in world.records if r.event == "leg_fired"] == []


async def test_strategy_dca_ends_after_its_rounds_and_deletes_its_schedule(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    strategy = StrategyInput(
        "stg-dca", StrategyType.DCA, "alice", "SOL", "USDC", amount_per_order="0.5", every_s=3600, orders=2
    )
    handle = await start(env.client, strategy)
    assert await handle.execute_update("pause", result_type=bool)
    assert await handle.execute_update("resume", result_type=bool)
    # The Schedule starts the rounds; here they are run as it would start them.
    for n in range(2):
        with env.auto_time_skipping_disabled():  # as in the week below
            await env.client.execute_workflow(
                DcaRoundWorkflow.run,
                DcaRoundInput(strategy),
                id=f"dca-stg-dca-2026-12-0{n + 1}T00:00:00Z",
                task_queue=ORDERS_TASK_QUEUE,
            )
    assert await finish(world, handle) is StrategyStatus.COMPLETED
    assert world.schedule == ["created", "paused", "resumed", "deleted"]
    assert world.placed_amounts == ["0.5", "0.5"]
    keys = [r.event_key for r in world.records if r.event == "order_placed"]
    assert keys == ["placed:round-2026-12-01T00:00:00Z", "placed:round-2026-12-02T00:00:00Z"]


async def test_strategy_bracket_paused_fires_no_leg_until_resumed(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    handle = await start(env.client, bracket("stg-bracket-paused"))
    while "placed:stop" not in {r.event_key for r in world.records}:  # both legs started
        await asyncio.sleep(0.01)
    take, stop = (p.order_id for p in world.placed)
    assert take is not None and stop is not None
    assert await handle.execute_update("pause", result_type=bool)
    await handle.signal(LEG_TRIGGERED_SIGNAL, LegTriggered(stop))  # ignored while paused
    await handle.signal(LEG_TRIGGERED_SIGNAL, LegTriggered("ord-not-a-leg"))  # never a leg
    assert await handle.execute_update("resume", result_type=bool)
    assert [r.event for r in world.records if r.event == "leg_fired"] == []
    await handle.signal(LEG_TRIGGERED_SIGNAL, LegTriggered(take))  # the watcher says it again
    assert await finish(world, handle) is StrategyStatus.COMPLETED
    assert [r.data["order_id"] for r in world.records if r.event == "leg_fired"] == [take]
    assert world.cancelled == [stop]
    # Once a leg fired, the bracket can no longer be cancelled or paused.
    assert world.events().count("paused") == 1


async def test_strategy_dca_runs_a_week_of_hourly_rounds(
    env: WorkflowEnvironment, world: StrategyWorld
) -> None:
    """A week in seconds: the test server skips each hour (it does not run Schedules, so
    the test starts each round as the Schedule would)."""
    strategy = StrategyInput(
        "stg-dca-week",
        StrategyType.DCA,
        "alice",
        "SOL",
        "USDC",
        amount_per_order="0.5",
        every_s=3600,
        orders=168,
    )
    handle = await start(env.client, strategy)
    started = await env.get_current_time()
    for hour in range(168):
        await env.sleep(3600)
        # While a round runs, time must not skip: the next thing due is the strategy's
        # own 10-year execution timeout.
        with env.auto_time_skipping_disabled():
            await env.client.execute_workflow(
                DcaRoundWorkflow.run,
                DcaRoundInput(strategy),
                id=f"dca-stg-dca-week-{hour}",
                task_queue=ORDERS_TASK_QUEUE,
            )
    assert await finish(world, handle) is StrategyStatus.COMPLETED
    assert await env.get_current_time() - started >= timedelta(days=7)
    assert len(world.placed_amounts) == 168 and world.schedule == ["created", "deleted"]
    assert len({r.event_key for r in world.records if r.event == "order_placed"}) == 168
