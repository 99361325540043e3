"""Strategy workflows: one per strategy (workflow id = strategy id), whose orders are
child order workflows (workflow id = order id, `parent_id` on the order).

- TWAP: `slices` market orders, one every `interval_s` on a durable timer; with a limit
  price, a slice priced worse is skipped and its amount carried to the next.
- Bracket: a take-profit leg and a stop leg, both WAITING children. The market watcher
  tells this workflow (not the legs) when a leg's condition holds; the first such
  signal decides, the workflow fires that leg and cancels the other. Signals are
  handled one at a time, so even a move that crosses both conditions fires one leg.
- DCA: a Temporal Schedule (dca-<strategy id>) starts a DcaRoundWorkflow each period;
  each round places one child order and tells this workflow when it has finished.

Pause holds future orders (a DCA pauses its Schedule; a paused bracket lets no leg
fire); cancel stops future orders, an order already executing finishes. Activities do
every bit of I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.strategies import StrategyActivities
    from contracts.landing import LandingRequest  # noqa: F401
    from contracts.orders import (
        ORDER_WORKFLOW,
        TRIGGER_SIGNAL,
        OrderOutcome,
        Trigger,
        TriggerReason,
    )
    from contracts.policies import WORKFLOW_TASK_TIMEOUT
    from contracts.strategies import (
        ACCEPTS_ORDERS_QUERY,
        CANCEL_STRATEGY_UPDATE,
        DCA_ROUND_WORKFLOW,
        ENDED,
        LEG_TRIGGERED_SIGNAL,
        PAUSE_UPDATE,
        RESUME_UPDATE,
        ROUND_FINISHED_SIGNAL,
        STRATEGY_WORKFLOW,
        BracketLeg,
        CancelChildRequest,
        ChildFinished,
        ChildOrderSpec,
        DcaRoundInput,
        LegFired,
        LegTriggered,
        OrderEnded,
        OrderPlaced,
        OrderRefused,
        OrderWithdrawn,
        Paused,
        PlaceChildRequest,
        PlacedChild,
        PlacementOutcome,
        Resumed,
        RunStarted,
        ScheduleRequest,
        SliceSkipped,
        StrategyEnded,
        StrategyInput,
        StrategyRecord,
        StrategyStep,
        TwapSlice,
        slice_units,
    )
    from core.domain import OrderStatus, OrderType, StrategyStatus, StrategyType
    from core.temporal import ORDER_STATUS, ORDER_TYPE, ORDERS_TASK_QUEUE, TOKEN_PAIR, owner_priority

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30)
)
CHILD_TASK_TIMEOUT = WORKFLOW_TASK_TIMEOUT  # as orders/runs.py starts an order's workflow
# A long DCA keeps its history short: it continues as new after this many rounds.
ROUNDS_PER_RUN = 500
# A cancel answered while a placement was in flight: the order that placement stored is
# withdrawn (CANCELLED, never started) instead of started after the 202.
WITHDRAW_PLACED_AFTER_CANCEL = "withdraw-placed-after-cancel"


async def _record(strategy_id: str, step: StrategyStep) -> None:
    """Store a strategy's step: its event (once per key) and its status change, if any
    (what each says: strategies/transitions.py)."""
    await workflow.execute_activity_method(
        StrategyActivities.record_strategy,
        StrategyRecord.of(strategy_id, step),
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=RETRY,
    )


async def _place(strategy: StrategyInput, spec: ChildOrderSpec) -> PlacedChild:
    placed: PlacedChild = await workflow.execute_activity_method(
        StrategyActivities.place_child,
        PlaceChildRequest(
            strategy.strategy_id,
            strategy.owner,
            strategy.token_in,
            strategy.token_out,
            strategy.slippage_bps,
            spec,
        ),
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=RETRY,
    )
    return placed


async def _start_child(placed: PlacedChild, owner: str) -> workflow.ChildWorkflowHandle[object, OrderOutcome]:
    order = placed.input
    assert order is not None and placed.order_id is not None
    return await workflow.start_child_workflow(
        ORDER_WORKFLOW,
        order,
        id=placed.order_id,
        task_queue=ORDERS_TASK_QUEUE,
        result_type=OrderOutcome,
        # The order outlives a cancelled or failed strategy: it ends on its own terms.
        parent_close_policy=ParentClosePolicy.ABANDON,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(ORDER_TYPE, order.order_type),
                SearchAttributePair(TOKEN_PAIR, f"{order.token_in}/{order.token_out}"),
                SearchAttributePair(ORDER_STATUS, OrderStatus.PENDING),
            ]
        ),
        static_summary=placed.summary,
        static_details=placed.details,
        task_timeout=CHILD_TASK_TIMEOUT,
        priority=owner_priority(owner),
    )


async def _outcome(handle: workflow.ChildWorkflowHandle[object, OrderOutcome]) -> OrderStatus:
    try:
        outcome = await handle
    except ChildWorkflowError:
        return OrderStatus.FAILED
    return outcome.status


Legs = dict[str, workflow.ChildWorkflowHandle[object, OrderOutcome]]  # a bracket's, by order id


@workflow.defn(name=STRATEGY_WORKFLOW)
class StrategyWorkflow:
    @workflow.init
    def __init__(self, strategy: StrategyInput) -> None:
        # The input is known before any signal or update is handled (they may come
        # with the first workflow task, before run starts; also after continue-as-new).
        self._strategy = strategy
        self._paused = strategy.paused
        self._rounds_finished = strategy.rounds_finished
        self._cancelled = False
        self._decided: str | None = None  # bracket: the leg that fired
        self._legs: set[str] = set()  # bracket: its two orders
        self._children: list[asyncio.Task[None]] = []
        self._ended = False
        self._schedule_exists = strategy.rounds_finished > 0  # a DCA's, once created
        self._pausing = asyncio.Lock()  # one pause or resume at a time, in arrival order
        self._pause_changes = 0

    @workflow.update(name=PAUSE_UPDATE)
    async def pause(self) -> bool:
        """Hold future orders (a DCA pauses its Schedule); False when it cannot."""
        return await self._set_paused(True)

    @workflow.update(name=RESUME_UPDATE)
    async def resume(self) -> bool:
        return await self._set_paused(False)

    async def _set_paused(self, paused: bool) -> bool:
        async with self._pausing:
            if self._closing() or self._paused == paused:
                return False
            strategy = self._strategy
            if strategy.type is StrategyType.DCA:
                await workflow.wait_condition(lambda: self._schedule_exists or self._closing())
                if self._closing():
                    return False
                await self._schedule(
                    StrategyActivities.pause_schedule if paused else StrategyActivities.resume_schedule,
                    strategy,
                )
            self._paused = paused
            self._pause_changes += 1
            change = self._pause_changes
            await _record(strategy.strategy_id, Paused(change) if paused else Resumed(change))
            return True

    def _closing(self) -> bool:
        """Cancelled, ending, or a bracket that has fired: nothing more to steer."""
        return self._cancelled or self._ended or self._decided is not None

    @workflow.update(name=CANCEL_STRATEGY_UPDATE)
    def cancel(self) -> bool:
        if self._closing():
            return False
        self._cancelled = True
        return True

    @workflow.query(name=ACCEPTS_ORDERS_QUERY)
    def accepts_orders(self) -> bool:
        return not self._cancelled and not self._ended

    @workflow.signal(name=LEG_TRIGGERED_SIGNAL)
    def leg_triggered(self, leg: LegTriggered) -> None:
        # The first leg to fire wins; whatever arrives after is ignored, and so is a
        # leg that fires while the bracket is paused (the watcher says it again).
        if self._decided is None and not self._cancelled and not self._paused and leg.order_id in self._legs:
            self._decided = leg.order_id

    @workflow.signal(name=ROUND_FINISHED_SIGNAL)
    def round_finished(self, finished: ChildFinished) -> None:
        self._rounds_finished += 1

    @workflow.run
    async def run(self, strategy: StrategyInput) -> StrategyStatus:
        # First, a record: a strategy whose row is missing (its start raced a failed
        # request) ends here instead of placing orders nobody can see.
        await _record(strategy.strategy_id, RunStarted(strategy.rounds_finished))
        match strategy.type:
            case StrategyType.TWAP:
                status = await self._twap(strategy)
            case StrategyType.BRACKET:
                status = await self._bracket(strategy)
            case StrategyType.DCA:
                status = await self._dca(strategy)
        await asyncio.gather(*self._children)
        self._ended = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        await _record(strategy.strategy_id, StrategyEnded(status))
        return status

    # Shared by the types: following a child, holding while paused, withdrawing and
    # cancelling a child.

    def _follow(
        self,
        strategy: StrategyInput,
        order_id: str,
        handle: workflow.ChildWorkflowHandle[object, OrderOutcome],
    ) -> None:
        """Record the child's end when it comes (progress is summed from the orders)."""

        async def follow() -> None:
            status = await _outcome(handle)
            await _record(strategy.strategy_id, OrderEnded(order_id, status))

        self._children.append(asyncio.create_task(follow()))

    async def _hold_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._paused or self._cancelled)

    async def _withdrawn_after_cancel(self, placed: PlacedChild) -> bool:
        """Whether the cancel came while this placement was in flight: its order, stored
        meanwhile, is then withdrawn, never started (no order starts after a 202)."""
        if not (
            self._cancelled
            and placed.outcome is PlacementOutcome.PLACED
            and placed.order_id is not None
            and workflow.patched(WITHDRAW_PLACED_AFTER_CANCEL)
        ):
            return False
        await workflow.execute_activity_method(
            StrategyActivities.withdraw_child,
            CancelChildRequest(placed.order_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        await _record(self._strategy.strategy_id, OrderWithdrawn(placed.order_id))
        return True

    async def _cancel_child(self, order_id: str) -> None:
        await workflow.execute_activity_method(
            StrategyActivities.cancel_child,
            CancelChildRequest(order_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    # TWAP: one slice per interval, a skipped slice's amount carried to the next.

    async def _twap(self, strategy: StrategyInput) -> StrategyStatus:
        sizes = slice_units(strategy.amount_units, strategy.slices)
        carried = 0
        for n in range(strategy.slices):
            if n > 0:
                # A cancel wakes the wait; the timer is durable across restarts.
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._cancelled, timeout=timedelta(seconds=strategy.interval_s)
                    )
            await self._hold_while_paused()
            if self._cancelled:
                return StrategyStatus.CANCELLED
            units = sizes[n] + carried
            placed = await self._twap_slice(strategy, n + 1, units)
            if placed is None:
                return StrategyStatus.CANCELLED
            carried = units if placed.outcome is PlacementOutcome.SKIPPED else 0
        return StrategyStatus.COMPLETED

    async def _twap_slice(self, strategy: StrategyInput, number: int, units: int) -> PlacedChild | None:
        """Place slice `number` and start or record it; None when the strategy's cancel
        came while it was placed (its order withdrawn)."""
        spec = ChildOrderSpec(
            key=f"slice-{number}",
            type=OrderType.MARKET,
            amount=_human(units, strategy.decimals_in),
            limit_price=strategy.limit_price,
        )
        placed = await _place(strategy, spec)
        if await self._withdrawn_after_cancel(placed):
            return None
        twap_slice = TwapSlice(number, strategy.slices, spec.amount)
        match placed.outcome:
            case PlacementOutcome.PLACED:
                assert placed.order_id is not None
                handle = await _start_child(placed, strategy.owner)
                self._follow(strategy, placed.order_id, handle)
                await _record(strategy.strategy_id, OrderPlaced(spec.key, placed.order_id, slice=twap_slice))
            case PlacementOutcome.SKIPPED:
                await _record(strategy.strategy_id, SliceSkipped(spec.key, twap_slice, placed.reason))
            case PlacementOutcome.REFUSED:
                await _record(strategy.strategy_id, OrderRefused(spec.key, placed.reason, slice=twap_slice))
        return placed

    # Bracket: place both legs, wait for the first to fire (or end), then decide.

    async def _bracket(self, strategy: StrategyInput) -> StrategyStatus:
        legs = await self._place_legs(strategy)
        if isinstance(legs, StrategyStatus):
            return legs
        ended = await self._wait_for_legs(legs)
        return await self._decide(strategy, legs, ended)

    async def _place_legs(self, strategy: StrategyInput) -> Legs | StrategyStatus:
        """Place and start the take-profit, then the stop: both legs, or the status the
        bracket ends with when one could not be (the other leg cancelled)."""
        legs: Legs = {}
        for leg, spec in _bracket_legs(strategy):
            placed = await _place(strategy, spec)
            if await self._withdrawn_after_cancel(placed):
                for order_id in legs:
                    await self._cancel_child(order_id)
                for order_id, handle in legs.items():
                    await _record(strategy.strategy_id, OrderEnded(order_id, await _outcome(handle)))
                return StrategyStatus.CANCELLED
            if placed.outcome is not PlacementOutcome.PLACED or placed.order_id is None:
                await _record(strategy.strategy_id, OrderRefused(spec.key, placed.reason, leg=leg))
                for order_id in legs:
                    await self._cancel_child(order_id)
                await asyncio.gather(*(_outcome(h) for h in legs.values()))
                return StrategyStatus.FAILED
            self._legs.add(placed.order_id)
            legs[placed.order_id] = await _start_child(placed, strategy.owner)
            await _record(strategy.strategy_id, OrderPlaced(spec.key, placed.order_id, leg=leg))
        return legs

    async def _wait_for_legs(self, legs: Legs) -> dict[str, asyncio.Task[OrderStatus]]:
        """Until a leg fires, the bracket is cancelled, or a leg ends on its own first (it
        expired, or its owner cancelled it). Returns each leg's end, to come."""
        ended = {order_id: asyncio.create_task(_outcome(handle)) for order_id, handle in legs.items()}
        await workflow.wait_condition(
            lambda: self._decided is not None or self._cancelled or any(t.done() for t in ended.values())
        )
        return ended

    async def _decide(
        self, strategy: StrategyInput, legs: Legs, ended: dict[str, asyncio.Task[OrderStatus]]
    ) -> StrategyStatus:
        """Fire the leg that triggered first (none when cancelled or a leg ended on its
        own), cancel the other, record how each ended: the bracket's status."""
        expired = any(t.done() and t.result() is OrderStatus.EXPIRED for t in ended.values())
        fired = self._decided if not self._cancelled and not any(t.done() for t in ended.values()) else None
        if fired is not None and fired in legs:
            await workflow.get_external_workflow_handle(fired).signal(
                TRIGGER_SIGNAL, Trigger(TriggerReason.PRICE_TRIGGERED)
            )
            await _record(strategy.strategy_id, LegFired(fired))
        for order_id in legs:
            if order_id != fired:
                await self._cancel_child(order_id)
        outcomes = {order_id: await task for order_id, task in ended.items()}
        for order_id, outcome in outcomes.items():
            await _record(strategy.strategy_id, OrderEnded(order_id, outcome))
        if fired is None:
            return StrategyStatus.EXPIRED if expired else StrategyStatus.CANCELLED
        return StrategyStatus.COMPLETED if outcomes[fired] is OrderStatus.CONFIRMED else StrategyStatus.FAILED

    # DCA: the Schedule starts the rounds (DcaRoundWorkflow); this counts them.

    async def _dca(self, strategy: StrategyInput) -> StrategyStatus:
        if strategy.rounds_finished == 0:
            await self._schedule(StrategyActivities.create_schedule, strategy)
        self._schedule_exists = True
        await workflow.wait_condition(
            lambda: (
                self._cancelled
                or (strategy.orders is not None and self._rounds_finished >= strategy.orders)
                or self._rounds_finished - strategy.rounds_finished >= ROUNDS_PER_RUN
            )
        )
        if self._cancelled or (strategy.orders is not None and self._rounds_finished >= strategy.orders):
            await self._schedule(StrategyActivities.delete_schedule, strategy)
            return StrategyStatus.CANCELLED if self._cancelled else StrategyStatus.COMPLETED
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(_carry(strategy, self._rounds_finished, self._paused))

    async def _schedule(self, activity: object, strategy: StrategyInput) -> None:
        await workflow.execute_activity_method(
            activity,  # type: ignore[arg-type]
            ScheduleRequest(strategy),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )


def _bracket_legs(strategy: StrategyInput) -> list[tuple[BracketLeg, ChildOrderSpec]]:
    """The take-profit, then the stop (a trailing stop with trailing_bps), as placed."""
    assert strategy.amount is not None
    take = ChildOrderSpec(
        BracketLeg.TAKE_PROFIT.value,
        OrderType.TAKE_PROFIT,
        strategy.amount,
        trigger_price=strategy.take_profit_price,
        expires_in_s=strategy.expires_in_s,
    )
    stop = (
        ChildOrderSpec(
            BracketLeg.STOP.value,
            OrderType.TRAILING_STOP,
            strategy.amount,
            trigger_price=strategy.stop_loss_price,
            trailing_bps=strategy.trailing_bps,
            expires_in_s=strategy.expires_in_s,
        )
        if strategy.trailing_bps is not None
        else ChildOrderSpec(
            BracketLeg.STOP.value,
            OrderType.STOP_LOSS,
            strategy.amount,
            trigger_price=strategy.stop_loss_price,
            expires_in_s=strategy.expires_in_s,
        )
    )
    return [(BracketLeg.TAKE_PROFIT, take), (BracketLeg.STOP, stop)]


def _carry(strategy: StrategyInput, rounds_finished: int, paused: bool) -> StrategyInput:
    from dataclasses import replace

    return replace(strategy, rounds_finished=rounds_finished, paused=paused)


def _human(units: int, decimals: int) -> str:
    """Base units as a decimal string (exact: no float)."""
    whole, fraction = divmod(units, 10**decimals)
    digits = str(fraction).rjust(decimals, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


@workflow.defn(name=DCA_ROUND_WORKFLOW)
class DcaRoundWorkflow:
    """One DCA period, started by the strategy's Schedule: place one order, wait for it,
    tell the strategy. Its id (the Schedule's, plus the scheduled time) keys the order,
    so a retried placement never makes two."""

    @workflow.run
    async def run(self, round_: DcaRoundInput) -> OrderStatus:
        strategy = round_.strategy
        assert strategy.amount_per_order is not None
        key = f"round-{workflow.info().workflow_id.removeprefix(f'dca-{strategy.strategy_id}-')}"
        spec = ChildOrderSpec(key, OrderType.MARKET, strategy.amount_per_order)
        placed = await _place(strategy, spec)
        status = OrderStatus.FAILED
        if placed.reason == ENDED:
            return OrderStatus.CANCELLED  # the strategy ended while this round started
        if placed.outcome is PlacementOutcome.PLACED and placed.order_id is not None:
            await _record(strategy.strategy_id, OrderPlaced(key, placed.order_id))
            status = await _outcome(await _start_child(placed, strategy.owner))
            await _record(strategy.strategy_id, OrderEnded(placed.order_id, status))
        else:
            await _record(strategy.strategy_id, OrderRefused(key, placed.reason))
        try:
            await workflow.get_external_workflow_handle(strategy.strategy_id).signal(
                ROUND_FINISHED_SIGNAL, ChildFinished(placed.order_id or "", status)
            )
        except FailureError:
            pass  # the strategy ended meanwhile (cancelled): nobody left to tell
        return status
