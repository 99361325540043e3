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
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.execution import ExecutionActivities
    from activities.quotes import QuoteActivities
    from activities.records import OrderRecords
    from core.domain import OrderStatus
    from core.temporal import ADMISSION_TASK_QUEUE, EXECUTION_TASK_QUEUE, ORDER_STATUS, SELECTED_DEX
    from market.pools import DEXES
    from market.tokens import format_amount, format_price
    from workflows.inputs import (
        AdmitRequest,
        BuildRequest,
        ConfirmRequest,
        ConfirmResult,
        OrderInput,
        OrderOutcome,
        QuoteRequest,
        QuoteResult,
        RouteDecision,
        RouteRequest,
        SubmitRequest,
        TransitionRequest,
        Trigger,
    )
    from workflows.policies import (
        BACKOFF_COEFFICIENT,
        INITIAL_INTERVAL,
        MAX_ATTEMPTS,
        MAXIMUM_INTERVAL,
    )


def _retry(maximum_attempts: int = MAX_ATTEMPTS) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=INITIAL_INTERVAL,
        backoff_coefficient=BACKOFF_COEFFICIENT,
        maximum_interval=MAXIMUM_INTERVAL,
        maximum_attempts=maximum_attempts,
    )


# Recording is bookkeeping, not an order step: it keeps trying (PostgreSQL or Redis
# may be restarting) so that every accepted order reaches its terminal record.
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)
SHORT_STEP = timedelta(seconds=10)
HEARTBEAT_TIMEOUT = timedelta(seconds=2)
HISTORY_LIMIT = 2_000  # events; a long wait continues as new past this
CRASH_RERUNS = 10
EXECUTION_STEP = timedelta(seconds=60)
# Workflows started before this change ran build, submit and confirm as regular
# activities on the execution task queue; on replay they keep doing so.
LOCAL_EXECUTION = "local-execution"


class AttemptFailed(Exception):
    """This attempt is over; `retry` says whether a fresh quote may try again."""

    def __init__(self, reason: str, attempts_used: int, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts_used = attempts_used
        self.retry = retry


class NotAtLimit(Exception):
    """A limit order's fresh route pays less than its limit: back to waiting."""


@workflow.defn
class OrderWorkflow:
    def __init__(self) -> None:
        self._status = OrderStatus.PENDING
        self._replay = 0
        self._attempts_used = 0
        self._trigger: Trigger | None = None
        self._cancel_requested = False
        self._executing = False
        self._local_execution = False

    @workflow.query
    def status(self) -> str:
        return self._status

    @workflow.signal
    def trigger(self, trigger: Trigger) -> None:
        """From the market watcher: the condition a WAITING order waits for holds."""
        if self._status == OrderStatus.WAITING:
            self._trigger = trigger

    @workflow.update
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
            await self._record(
                OrderStatus.PENDING,
                "replay",
                changes={"failure_reason": None, "attempts": 0},
                data={"replay": {"run": order.replay, "by": "operator"}},
            )
        while True:
            if order.order_type != "market":
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
                if failure.retry and attempts_used < MAX_ATTEMPTS:
                    continue
                await self._record(
                    OrderStatus.FAILED,
                    "failed",
                    changes={"failure_reason": failure.reason, "attempts": attempts_used},
                    data={"reason": failure.reason},
                )
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
        awaited: dict[str, Any] = (
            {"limit_price": order.limit_price, "pair": f"{order.token_in}/{order.token_out}"}
            if order.order_type == "limit"
            else {"pool_open": order.token_out, "pair": f"{order.token_in}/{order.token_out}"}
        )
        expires_at = datetime.fromtimestamp(order.expires_at or 0, UTC)
        await self._record(
            OrderStatus.WAITING,
            f"waiting:{waits}",
            data={"waiting_for": awaited, "expires_at": expires_at.isoformat().replace("+00:00", "Z")},
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
        await self._record(status, status.lower(), data={"reason": reason})
        return OrderOutcome(order.order_id, status)

    async def _attempt(self, order: OrderInput, attempts_used: int) -> ConfirmResult:
        attempt = attempts_used + 1
        await self._record(OrderStatus.ROUTING, _key("routing", order, attempt), data={"attempt": attempt})
        quotes = await self._quote_all(order, attempts_used)
        decision = await workflow.execute_local_activity_method(
            QuoteActivities.route_order,
            RouteRequest(
                order.order_id, order.token_in, order.token_out, order.amount_in, order.slippage_bps, quotes
            ),
            start_to_close_timeout=SHORT_STEP,
            retry_policy=_retry(),
        )
        out = _decimals_out(order)
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
            changes={
                "quotes": [_quote_view(q, order) for q in quotes],
                "selected_dex": decision.selected_dex,
                "route": _route_view(decision, order),
                "min_amount_out": format_amount(decision.min_amount_out, out),
            },
            data={
                "attempt": attempt,
                "quotes": [_quote_view(q, order) for q in quotes],
                "selected_dex": decision.selected_dex,
                "route": _route_view(decision, order),
                "expected_amount_out": format_amount(decision.expected_amount_out, out),
                "min_amount_out": format_amount(decision.min_amount_out, out),
            },
        )
        tx = await self._step(
            ExecutionActivities.build_transaction,
            BuildRequest(order.order_id, attempt, order.token_in, order.token_out, decision),
            attempts_used,
            retry_policy=_retry(),
            summary=f"build {decision.selected_dex} swap, attempt {attempt}",
        )
        submitted = await self._step(
            ExecutionActivities.submit_transaction,
            SubmitRequest(tx, attempts_before=attempts_used, max_attempts=MAX_ATTEMPTS - attempts_used),
            attempts_used,
            retry_policy=_retry(MAX_ATTEMPTS - attempts_used),
            summary=f"submit, attempt {attempt}",
            counts_attempts=True,
        )
        attempts_used = submitted.attempt
        await self._record(
            OrderStatus.SUBMITTED,
            _key("submitted", order, attempts_used),
            changes={"tx_hash": submitted.tx_hash, "attempts": attempts_used},
            data={"tx_hash": submitted.tx_hash, "attempt": attempts_used},
        )
        confirmed: ConfirmResult = await self._step(
            ExecutionActivities.confirm_transaction,
            ConfirmRequest(tx, attempt=attempts_used, max_attempts=MAX_ATTEMPTS),
            attempts_used,
            retry_policy=_retry(),
            summary=f"confirm {tx.tx_hash[:12]}…",
        )
        amount_out = format_amount(confirmed.amount_out, out)
        price = format_price(
            _human(confirmed.amount_out, out) / _human(confirmed.amount_in, order.decimals_in)
        )
        await self._record(
            OrderStatus.CONFIRMED,
            "confirmed",
            changes={
                "tx_hash": confirmed.tx_hash,
                "amount_out": amount_out,
                "executed_price": price,
                "attempts": attempts_used,
            },
            data={"tx_hash": confirmed.tx_hash, "executed_price": price, "amount_out": amount_out},
        )
        return confirmed

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
        raise AttemptFailed(_reason(error), used, retry=details.get("remedy") == "fresh_quote") from error

    async def _record(
        self,
        status: OrderStatus,
        event_key: str,
        *,
        changes: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self._status = status
        workflow.upsert_search_attributes([ORDER_STATUS.value_set(status)])
        await workflow.execute_local_activity_method(
            OrderRecords.record_transition,
            TransitionRequest(
                order_id=workflow.info().workflow_id,
                # A replayed order's steps are new events, not the first run's again.
                event_key=event_key if not self._replay else f"{event_key}#replay{self._replay}",
                status=status,
                changes=changes or {},
                data=data or {},
            ),
            start_to_close_timeout=SHORT_STEP,
            retry_policy=RECORD_RETRY,
            summary=f"record {status}",
        )


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


def _decimals_out(order: OrderInput) -> int:
    if order.decimals_out is None:
        raise ApplicationError("token_out is not listed", non_retryable=True)
    return order.decimals_out


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _quote_view(quote: QuoteResult, order: OrderInput) -> dict[str, Any]:
    amount_out = _human(quote.amount_out, _decimals_out(order))
    return {
        "dex": quote.dex,
        "amount_out": format_amount(quote.amount_out, _decimals_out(order)),
        "price": format_price(amount_out / _human(quote.amount_in, order.decimals_in)),
        "min_amount_out": format_amount(quote.min_amount_out, _decimals_out(order)),
        "fee_bps": quote.fee_bps,
        "price_impact_bps": quote.price_impact_bps,
        "slot": quote.slot,
    }


def _route_view(decision: RouteDecision, order: OrderInput) -> list[dict[str, Any]]:
    return [
        {
            "dex": leg.dex,
            "amount_in": format_amount(leg.amount_in, order.decimals_in),
            "amount_out": format_amount(leg.amount_out, _decimals_out(order)),
        }
        for leg in decision.legs
    ]
