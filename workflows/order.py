"""The order workflow: one per order, workflow id = order id.

    PENDING → (admission) → ROUTING → BUILDING → SUBMITTED → CONFIRMED, or FAILED

Each attempt quotes both venues in parallel, routes, builds, submits and confirms. A
failure that a fresh quote can fix (slippage, an expired blockhash) starts the next
attempt from ROUTING; the order has at most 3 submit tries in all, Temporal's own
activity retries included. The workflow decides; activities do every bit of I/O.

Admission is the one regular activity (it needs the task queue's server-side rate
limit); everything after it runs as local activities in one workflow task, because each
workflow-task hop costs ≈ 50 ms on the server while the steps themselves take ~1 ms.
A worker that dies mid-execution loses its workflow task; another worker re-runs the
steps after admission, which is safe: records are idempotent per event key and the
chain executes an order once, whatever is submitted again.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.execution import ExecutionActivities
    from activities.quotes import QuoteActivities
    from activities.records import OrderRecords

    # Passed through, like every contract, so that the sandbox decodes the inputs that
    # carry it (its type hints resolve against the one real module).
    from contracts.failures import MarketErrorCode
    from contracts.landing import LandingRequest  # noqa: F401
    from contracts.orders import (
        CANCEL_UPDATE,
        ORDER_WORKFLOW,
        STATUS_QUERY,
        TRIGGER_SIGNAL,
        AdmitRequest,
        BuildRequest,
        BuiltTransaction,
        CloseRequest,
        Confirmed,
        ConfirmRequest,
        ConfirmResult,
        Ended,
        Failed,
        OrderInput,
        OrderOutcome,
        PlanRequest,
        PlanResult,
        QuoteRequest,
        QuoteResult,
        Reopened,
        Routed,
        RouteRequest,
        RoutingStarted,
        Step,
        SubmitRequest,
        Submitted,
        TransitionRequest,
        Trigger,
        Waiting,
    )
    from contracts.policies import (
        BACKOFF_COEFFICIENT,
        HEARTBEAT_TIMEOUT,
        INITIAL_INTERVAL,
        MAX_ATTEMPTS,
        MAXIMUM_INTERVAL,
        RECORD_FIRST_RETRY,
        RECORD_MAXIMUM_INTERVAL,
        Remedy,
    )
    from core.domain import DEXES, OrderStatus, SwapMode
    from core.order_kinds import WaitKind, kind_of
    from core.temporal import ADMISSION_TASK_QUEUE, EXECUTION_TASK_QUEUE, ORDER_STATUS, SELECTED_DEX


def _retry(maximum_attempts: int = MAX_ATTEMPTS) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=INITIAL_INTERVAL,
        backoff_coefficient=BACKOFF_COEFFICIENT,
        maximum_interval=MAXIMUM_INTERVAL,
        maximum_attempts=maximum_attempts,
    )


# Recording is bookkeeping, not an order step: it keeps trying (PostgreSQL or Redis
# may be restarting) so that every accepted order reaches its terminal record.
RECORD_RETRY = RetryPolicy(initial_interval=RECORD_FIRST_RETRY, maximum_interval=RECORD_MAXIMUM_INTERVAL)
SHORT_STEP = timedelta(seconds=10)
HISTORY_LIMIT = 2_000  # events; a long wait continues as new past this
CRASH_RERUNS = 10
EXECUTION_STEP = timedelta(seconds=60)
# Workflows started before this change ran build, submit and confirm as regular
# activities on the execution task queue; on replay they keep doing so.
LOCAL_EXECUTION = "local-execution"
# An order whose best route pays nothing (dust) fails instead of trading its input away.
NOTHING_TO_RECEIVE = "nothing-to-receive"
# Before FAILED, look for a transaction that landed after all (and close the order's
# reservation so that none can land later).
LANDED_BEFORE_FAILED = "landed-before-failed"
# Quoting and routing became one step that plans multi-hop and exact-out routes (before:
# a quote per venue, then route_order on their curves).
ROUTE_PLAN = "route-plan"
# Failures after which the next attempt pays more per compute unit.
NOT_LANDED = frozenset({MarketErrorCode.TRANSACTION_EXPIRED, MarketErrorCode.BLOCKHASH_EXPIRED})


class AttemptFailed(Exception):
    """This attempt is over; `retry` says whether a fresh quote may try again, `code`
    what failed (a market error's code, when it was one)."""

    def __init__(self, reason: str, attempts_used: int, retry: bool, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts_used = attempts_used
        self.retry = retry
        self.code = code


class NotAtLimit(Exception):
    """A limit order's fresh route pays less than its limit: back to waiting."""


@workflow.defn(name=ORDER_WORKFLOW)
class OrderWorkflow:
    def __init__(self) -> None:
        self._status = OrderStatus.PENDING
        self._replay = 0
        self._attempts_used = 0
        self._trigger: Trigger | None = None
        self._cancel_requested = False
        self._executing = False
        self._local_execution = False
        # Attempts whose transaction never landed: each raises the next one's fee.
        self._escalation = 0
        self._expected_amount_out: int | None = None  # of the route last sent

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> OrderStatus:
        return self._status

    @workflow.signal(name=TRIGGER_SIGNAL)
    def trigger(self, trigger: Trigger) -> None:
        """From the market watcher: the condition a WAITING order waits for holds."""
        if self._status == OrderStatus.WAITING:
            self._trigger = trigger

    @workflow.update(name=CANCEL_UPDATE)
    def cancel(self) -> bool:
        """Accepted only before execution starts (PENDING or WAITING); the order then
        ends CANCELLED and never executes."""
        if self._executing or self._status not in (OrderStatus.PENDING, OrderStatus.WAITING):
            return False
        self._cancel_requested = True
        return True

    @workflow.run
    async def run(self, order: OrderInput) -> OrderOutcome:
        self._replay = order.replay
        if order.replay:
            # An operator re-drives a failed order: it is open again, from the start.
            await self._record(OrderStatus.PENDING, "replay", Reopened(order.replay))
        while True:
            if kind_of(order.order_type).waits is not None:
                waited = await self._wait(order)
                if isinstance(waited, OrderOutcome):
                    return waited
                order = waited
            # Admission waits on the server-side rate limit of its own task queue.
            await workflow.execute_activity_method(
                ExecutionActivities.admit_order,
                AdmitRequest(order.order_id),
                task_queue=ADMISSION_TASK_QUEUE,
                start_to_close_timeout=SHORT_STEP,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RECORD_RETRY,
                summary="admission (orders per minute, all workers)",
            )
            if self._cancel_requested:
                return await self._end(order, OrderStatus.CANCELLED, "cancelled by the client")
            self._executing = True
            outcome = await self._execute(order)
            if outcome is not None:
                return outcome
            self._executing = False  # a limit order whose price slipped away waits again

    async def _execute(self, order: OrderInput) -> OrderOutcome | None:
        """Attempts until CONFIRMED or FAILED; None sends a limit order back to waiting.
        Submit tries count for the whole order, across waits: at most 3 in all."""
        while True:
            attempts_used = self._attempts_used
            try:
                confirmed = await self._attempt(order, attempts_used)
            except NotAtLimit:
                return None
            except AttemptFailed as failure:
                attempts_used = self._attempts_used = failure.attempts_used
                if failure.code in NOT_LANDED:
                    self._escalation += 1
                if failure.retry and attempts_used < MAX_ATTEMPTS:
                    continue
                if workflow.patched(LANDED_BEFORE_FAILED):
                    # A worker cut off from Temporal may still have landed a transaction of
                    # this order: an order that executed is never shown FAILED.
                    landed: ConfirmResult | None = await workflow.execute_local_activity_method(
                        ExecutionActivities.close_unexecuted,
                        CloseRequest(order.order_id),
                        start_to_close_timeout=SHORT_STEP,
                        retry_policy=RECORD_RETRY,
                        summary="look for a landed transaction before failing",
                    )
                    if landed is not None:
                        await self._confirmed(order, landed, attempts_used)
                        return OrderOutcome(order.order_id, OrderStatus.CONFIRMED, tx_hash=landed.tx_hash)
                await self._record(OrderStatus.FAILED, "failed", Failed(failure.reason, attempts_used))
                return OrderOutcome(order.order_id, OrderStatus.FAILED, failure_reason=failure.reason)
            return OrderOutcome(order.order_id, OrderStatus.CONFIRMED, tx_hash=confirmed.tx_hash)

    async def _wait(self, order: OrderInput) -> OrderInput | OrderOutcome:
        """WAITING until the market watcher's trigger, a cancel, or expiry. Durable and
        free while idle: a timer and a signal, no polling."""
        if workflow.info().get_current_history_length() > HISTORY_LIMIT:
            workflow.continue_as_new(replace(order, waits=order.waits))  # keeps history bounded
        waits = order.waits
        order = replace(order, waits=waits + 1)
        self._trigger = None
        self._status = OrderStatus.WAITING
        await self._record(
            OrderStatus.WAITING,
            f"waiting:{waits}",
            Waiting(
                _wait_kind(order),
                order.token_in,
                order.token_out,
                expires_at=order.expires_at or 0,
                limit_price=order.limit_price,
                trigger_price=order.trigger_price,
                trailing_bps=order.trailing_bps,
                order_type=order.order_type,
            ),
        )
        remaining = (order.expires_at or 0) - workflow.now().timestamp()
        try:
            await workflow.wait_condition(
                lambda: self._trigger is not None or self._cancel_requested,
                timeout=max(remaining, 0.001),
            )
        except builtins.TimeoutError:
            return await self._end(order, OrderStatus.EXPIRED, "expired before its condition was met")
        if self._cancel_requested:
            return await self._end(order, OrderStatus.CANCELLED, "cancelled by the client")
        trigger = self._trigger
        assert trigger is not None
        if order.decimals_out is None and trigger.decimals_out is not None:
            order = replace(order, decimals_out=trigger.decimals_out)
        return order

    async def _end(self, order: OrderInput, status: OrderStatus, reason: str) -> OrderOutcome:
        await self._record(status, status.lower(), Ended(reason))
        return OrderOutcome(order.order_id, status)

    async def _attempt(self, order: OrderInput, attempts_used: int) -> ConfirmResult:
        attempt = attempts_used + 1
        await self._record(OrderStatus.ROUTING, _key("routing", order, attempt), RoutingStarted(attempt))
        if workflow.patched(ROUTE_PLAN):
            if order.quoted_route is not None and attempt == 1:
                quotes, decision = [], order.quoted_route  # what the client was quoted
            else:
                planned = await self._plan(order, attempts_used)
                quotes, decision = planned.quotes, planned.route
        else:
            quotes = await self._quote_all(order, attempts_used)
            decision = await workflow.execute_local_activity_method(
                QuoteActivities.route_order,
                RouteRequest(
                    order.order_id,
                    order.token_in,
                    order.token_out,
                    order.amount_in,
                    order.slippage_bps,
                    quotes,
                ),
                start_to_close_timeout=SHORT_STEP,
                retry_policy=_retry(),
            )
        out = _decimals_out(order)
        if decision.expected_amount_out <= 0 and workflow.patched(NOTHING_TO_RECEIVE):
            raise AttemptFailed(
                "NOTHING_TO_RECEIVE: the amount is too small for any route to pay out",
                attempts_used,
                retry=False,
            )
        if order.limit_price is not None:
            # Never fill below the limit: it raises the minimum; a route below it waits again.
            limit_out = _ceil(
                Decimal(order.limit_price) * _human(order.amount_in, order.decimals_in) * 10**out
            )
            if decision.expected_amount_out < limit_out:
                raise NotAtLimit()
            decision.min_amount_out = max(decision.min_amount_out, limit_out)
        workflow.upsert_search_attributes([SELECTED_DEX.value_set(decision.selected_dex)])
        self._local_execution = workflow.patched(LOCAL_EXECUTION)
        await self._record(
            OrderStatus.BUILDING,
            _key("building", order, attempt),
            Routed(attempt, quotes, decision, order.decimals_in, out),
        )
        self._expected_amount_out = decision.expected_amount_out
        tx = await self._step(
            ExecutionActivities.build_transaction,
            BuildRequest(
                order.order_id,
                attempt,
                order.token_in,
                order.token_out,
                decision,
                landing=order.landing,
                escalation=self._escalation,
            ),
            attempts_used,
            retry_policy=_retry(),
            summary=f"build {decision.selected_dex} swap, attempt {attempt}",
        )
        submitted = await self._step(
            ExecutionActivities.submit_transaction,
            SubmitRequest(
                tx,
                attempts_before=attempts_used,
                max_attempts=MAX_ATTEMPTS - attempts_used,
                simulate=order.landing is not None and order.landing.simulate,
            ),
            attempts_used,
            retry_policy=_retry(MAX_ATTEMPTS - attempts_used),
            summary=_submit_summary(tx, attempt, order),
            counts_attempts=True,
        )
        attempts_used = submitted.attempt
        await self._record(
            OrderStatus.SUBMITTED,
            _key("submitted", order, attempts_used),
            Submitted(submitted.tx_hash, attempts_used),
        )
        confirmed: ConfirmResult = await self._step(
            ExecutionActivities.confirm_transaction,
            ConfirmRequest(tx, attempt=attempts_used, max_attempts=MAX_ATTEMPTS),
            attempts_used,
            retry_policy=_retry(),
            summary=f"confirm {tx.tx_hash[:12]}…",
        )
        await self._confirmed(order, confirmed, attempts_used)
        return confirmed

    async def _confirmed(self, order: OrderInput, confirmed: ConfirmResult, attempts_used: int) -> None:
        report = confirmed.report
        await self._record(
            OrderStatus.CONFIRMED,
            "confirmed",
            Confirmed(
                confirmed.tx_hash,
                confirmed.amount_in,
                confirmed.amount_out,
                order.decimals_in,
                _decimals_out(order),
                attempts_used,
                confirmed.legs,
                confirmed.min_amount_out,
                report=report,
                expected_amount_out=self._expected_amount_out,
                landing=order.landing,
                token_in=order.token_in,
                token_out=order.token_out,
            ),
            summary=(
                f"record CONFIRMED: slot {report.landed_slot}, fee {report.fees.total_lamports} lamports"
                if report is not None
                else None
            ),
        )

    async def _plan(self, order: OrderInput, attempts_used: int) -> PlanResult:
        """Both venues quoted at once and the route planned, in one step."""
        exact_out = order.swap_mode is SwapMode.EXACT_OUT
        quoted = order.quoted_route
        try:
            result: PlanResult = await workflow.execute_local_activity_method(
                QuoteActivities.plan_route,
                PlanRequest(
                    order.order_id,
                    order.token_in,
                    order.token_out,
                    order.amount_out if exact_out and order.amount_out is not None else order.amount_in,
                    order.slippage_bps,
                    order.swap_mode,
                    order.max_hops,
                    order.dexes,
                    # The bounds it was accepted with: a quote's minimum, the reserved maximum.
                    min_amount_out=quoted.min_amount_out if quoted is not None and not exact_out else None,
                    max_amount_in=order.amount_in if exact_out else None,
                ),
                start_to_close_timeout=SHORT_STEP,
                retry_policy=_retry(),
                summary=f"quote {' and '.join(order.dexes or DEXES)}, plan a route of up to {order.max_hops} hop(s)",
            )
        except (ActivityError, ApplicationError) as error:
            raise AttemptFailed(f"no route: {_reason(error)}", attempts_used, retry=False) from error
        return result

    async def _quote_all(self, order: OrderInput, attempts_used: int) -> list[QuoteResult]:
        """Both venues in parallel; one venue failing leaves the other to trade on."""
        results = await asyncio.gather(
            *(
                workflow.execute_local_activity_method(
                    QuoteActivities.quote,
                    QuoteRequest(
                        order.order_id,
                        dex,
                        order.token_in,
                        order.token_out,
                        order.amount_in,
                        order.slippage_bps,
                    ),
                    start_to_close_timeout=SHORT_STEP,
                    retry_policy=_retry(),
                    summary=f"quote {dex}",
                )
                for dex in DEXES
            ),
            return_exceptions=True,
        )
        quotes = [r for r in results if isinstance(r, QuoteResult)]
        if not quotes:
            reasons = "; ".join(_reason(r) for r in results if isinstance(r, BaseException))
            raise AttemptFailed(f"no venue could quote: {reasons}", attempts_used, retry=False)
        return quotes

    async def _step(
        self,
        method: Any,
        request: Any,
        attempts_used: int,
        *,
        retry_policy: RetryPolicy,
        summary: str,
        counts_attempts: bool = False,
    ) -> Any:
        """Run one execution step; turn its failure into an AttemptFailed.

        A step whose tries all timed out (workers that died under it) runs again: a
        crash is not the order's failure, and every step is safe to repeat (the chain
        executes an order once, whatever is submitted).
        """
        for crashes in range(CRASH_RERUNS + 1):
            try:
                if self._local_execution:
                    return await workflow.execute_local_activity_method(
                        method,
                        request,
                        summary=summary,
                        start_to_close_timeout=EXECUTION_STEP,
                        retry_policy=retry_policy,
                    )
                return await workflow.execute_activity_method(
                    method,
                    request,
                    task_queue=EXECUTION_TASK_QUEUE,
                    summary=summary,
                    start_to_close_timeout=EXECUTION_STEP,
                    # Activities heartbeat while they run: a dead worker is noticed in seconds.
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=retry_policy,
                )
            except (ActivityError, ApplicationError, TimeoutError) as error:
                if isinstance(_cause(error), TimeoutError) and crashes < CRASH_RERUNS:
                    workflow.logger.warning("%s timed out on every try; running it again", summary)
                    continue
                self._attempt_failed(error, attempts_used, counts_attempts)
        raise AssertionError("unreachable: the last rerun returns or raises")

    @staticmethod
    def _attempt_failed(error: BaseException, attempts_used: int, counts_attempts: bool) -> NoReturn:
        details: dict[str, Any] = {}
        cause = _cause(error)
        if isinstance(cause, ApplicationError) and cause.details:
            details = cause.details[0]
        # Only submit tries count as the order's attempts; their details say which.
        used = int(details.get("attempt", attempts_used)) if counts_attempts else attempts_used
        remedy = Remedy(details.get("remedy", Remedy.RETRY))
        raise AttemptFailed(
            _reason(error), used, retry=remedy is Remedy.FRESH_QUOTE, code=details.get("code")
        ) from error

    async def _record(
        self, status: OrderStatus, event_key: str, step: Step, summary: str | None = None
    ) -> None:
        self._status = status
        workflow.upsert_search_attributes([ORDER_STATUS.value_set(status)])
        await workflow.execute_local_activity_method(
            OrderRecords.record_transition,
            TransitionRequest.of(
                workflow.info().workflow_id,
                # A replayed order's steps are new events, not the first run's again.
                event_key if not self._replay else f"{event_key}#replay{self._replay}",
                status,
                step,
            ),
            start_to_close_timeout=SHORT_STEP,
            retry_policy=RECORD_RETRY,
            summary=summary or f"record {status}",
        )


def _submit_summary(tx: BuiltTransaction, attempt: int, order: OrderInput) -> str:
    """What the Web UI shows for a submit: the attempt, and what it pays to land."""
    summary = f"submit, attempt {attempt}"
    if tx.compute_unit_limit:
        summary += f": {tx.compute_unit_limit} CU at {tx.micro_lamports_per_cu} µlamports"
        if tx.tip_lamports:
            summary += f", tip {tx.tip_lamports} lamports"
        if order.landing is not None and order.landing.simulate:
            summary += ", simulated first"
    return summary


def _cause(error: BaseException) -> BaseException | None:
    """What failed: a regular activity's failure arrives as ActivityError around its
    cause, a local activity's as the cause itself."""
    return error.cause if isinstance(error, ActivityError) else error


def _reason(error: BaseException) -> str:
    cause = _cause(error)
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause or error)


def _human(amount: int, decimals: int) -> Decimal:
    return Decimal(amount).scaleb(-decimals)


def _key(step: str, order: OrderInput, attempt: int) -> str:
    """A step's event key, unique per order: a limit order may execute after a second wait."""
    return f"{step}:{attempt}" if order.waits <= 1 else f"{step}:{order.waits}.{attempt}"


def _wait_kind(order: OrderInput) -> WaitKind:
    waits = kind_of(order.order_type).waits
    assert waits is not None, f"a {order.order_type} order does not wait"
    return waits


def _decimals_out(order: OrderInput) -> int:
    if order.decimals_out is None:
        raise ApplicationError("token_out is not listed", non_retryable=True)
    return order.decimals_out


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))
