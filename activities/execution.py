"""Admission, build, submit and confirm: the steps that touch the (simulated) chain.

These run only in `worker` processes: admission on its rate-limited task queue, the
rest as the order workflow's local activities.
"""

from __future__ import annotations

from temporalio import activity

from activities.attempts import run_attempt
from activities.records import OrderRecords
from contracts.orders import (
    AdmitRequest,
    BuildRequest,
    BuiltTransaction,
    CloseRequest,
    ConfirmRequest,
    ConfirmResult,
    RouteDecision,
    RouteLeg,
    SubmitRequest,
    SubmitResult,
)
from core.domain import SwapMode
from market.chain import SignedTransaction, decode_raw, encode_raw
from market.ledger import Landed
from market.sources import SwapChain
from market.transactions import ComputeBudget, SwapLeg


class ExecutionActivities:
    def __init__(self, chain: SwapChain, records: OrderRecords) -> None:
        self._chain = chain
        self._records = records

    @activity.defn
    async def admit_order(self, request: AdmitRequest) -> None:
        """Admission to execution. Does no work of its own: its task queue carries the
        server-side rate limit (orders per minute, across every worker), so an order
        passes here only when the system may execute one more."""
        activity.logger.debug("admitted %s", request.order_id)

    @activity.defn
    async def build_transaction(self, request: BuildRequest) -> BuiltTransaction:
        """A signed swap transaction for the route, with a recent blockhash."""
        legs = leg_minimums(request.route)
        tx = await run_attempt(
            self._records,
            self._chain.build(
                order_id=request.order_id,
                # One execution per order, whatever the attempt: the chain refuses a second.
                idempotency_key=f"{request.order_id}:swap",
                token_in=request.token_in,
                token_out=request.token_out,
                legs=legs,
                landing=request.landing,
                escalation=request.escalation,
            ),
            order_id=request.order_id,
            activity_name="build_transaction",
            attempt=activity.info().attempt,
        )
        budget = tx.budget or ComputeBudget(0, 0)
        return BuiltTransaction(
            tx_hash=tx.signature,
            order_id=request.order_id,
            idempotency_key=tx.idempotency_key,
            raw=encode_raw(tx.raw),
            recent_blockhash_slot=tx.recent_blockhash_slot,
            compute_unit_limit=budget.compute_unit_limit,
            micro_lamports_per_cu=budget.micro_lamports_per_cu,
            tip_lamports=budget.tip_lamports,
        )

    @activity.defn
    async def submit_transaction(self, request: SubmitRequest) -> SubmitResult:
        """Simulate (when the order asks) and send the transaction. Each try is one of the
        order's (at most 3) attempts, a failed simulation included."""
        attempt = request.attempts_before + activity.info().attempt
        tx_hash = await run_attempt(
            self._records,
            self._chain.submit(_signed(request.tx), simulate=request.simulate),
            order_id=request.tx.order_id,
            activity_name="submit_transaction",
            attempt=attempt,
            activity_max_attempts=request.max_attempts,
            transaction=request.tx.tx_hash,
        )
        return SubmitResult(tx_hash=tx_hash, attempt=attempt)

    @activity.defn
    async def confirm_transaction(self, request: ConfirmRequest) -> ConfirmResult:
        """Wait until the transaction lands; the chain executes it at most once."""
        landed = await run_attempt(
            self._records,
            self._chain.confirm(_signed(request.tx)),
            order_id=request.tx.order_id,
            activity_name="confirm_transaction",
            attempt=request.attempt,
            transaction=request.tx.tx_hash,
        )
        return confirm_result(landed)

    @activity.defn
    async def close_unexecuted(self, request: CloseRequest) -> ConfirmResult | None:
        """Before the order is recorded FAILED: its transaction if one landed after all (a
        worker cut off from Temporal can still land one); otherwise its reservation is
        released, and no transaction of it can land any more."""
        landed = await self._chain.close(request.order_id, f"{request.order_id}:swap")
        return confirm_result(landed) if landed is not None else None


def _signed(tx: BuiltTransaction) -> SignedTransaction:
    budget = ComputeBudget(tx.compute_unit_limit, tx.micro_lamports_per_cu, tx.tip_lamports)
    return SignedTransaction(
        tx.tx_hash, decode_raw(tx.raw), tx.idempotency_key, tx.recent_blockhash_slot, budget
    )


def leg_minimums(route: RouteDecision) -> list[SwapLeg]:
    """The route's legs as swap instructions, with the order's bounds spread over them.

    Exact-in: the last hop's legs each get their share of the order's minimum, rounded up,
    so together they never fill below it (the chain checks the total too). Exact-out: the
    last hop's legs pay out exactly their planned amounts; the first hop's legs may take
    their share of the order's maximum, which adds up to it exactly."""
    last = max((leg.hop for leg in route.legs), default=0)
    if route.swap_mode is SwapMode.EXACT_OUT:
        first = [leg for leg in route.legs if leg.hop == 0]
        planned = sum(leg.amount_in for leg in first)
        most = route.max_amount_in if route.max_amount_in is not None else planned
        caps = [most * leg.amount_in // max(planned, 1) for leg in first[:-1]]
        caps.append(most - sum(caps))
        cap_of = {id(leg): cap for leg, cap in zip(first, caps, strict=True)}
        return [
            SwapLeg(
                leg.dex,
                cap_of.get(id(leg), leg.amount_in),
                leg.amount_out,
                leg.token_in or "",
                leg.token_out or "",
                leg.hop,
                leg.share_bps,
                exact_out=True,
            )
            for leg in route.legs
        ]
    expected = max(route.expected_amount_out, 1)
    return [
        SwapLeg(
            leg.dex,
            leg.amount_in,
            -(-leg.amount_out * route.min_amount_out // expected) if leg.hop == last else 0,
            leg.token_in or "",
            leg.token_out or "",
            leg.hop,
            leg.share_bps,
        )
        for leg in route.legs
    ]


def confirm_result(landed: Landed) -> ConfirmResult:
    legs = [
        RouteLeg(
            leg.dex,
            leg.amount_in,
            leg.amount_out,
            leg.pool,
            leg.token_in or None,
            leg.token_out or None,
            leg.hop,
        )
        for leg in landed.legs
    ]
    last = max((leg.hop for leg in landed.legs), default=0)
    minimum = sum(leg.min_amount_out for leg in landed.legs if leg.hop == last) if landed.legs else None
    return ConfirmResult(
        landed.tx_hash, landed.amount_in, landed.amount_out, landed.slot, legs, minimum, landed.report
    )
