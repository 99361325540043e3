"""Turning a failed market call into a stored failure, a retry event and the right
Temporal error (retryable, or non-retryable so the workflow decides)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.records import OrderRecords
from contracts.policies import MAX_ATTEMPTS, Remedy, backoff_ms
from market.errors import MarketError, MarketErrorCode

log = logging.getLogger(__name__)
T = TypeVar("T")

# What each market error calls for.
REMEDIES: dict[MarketErrorCode, Remedy] = {
    MarketErrorCode.RATE_LIMITED: Remedy.RETRY,
    MarketErrorCode.ACCOUNT_IN_USE: Remedy.RETRY,
    MarketErrorCode.RPC_UNAVAILABLE: Remedy.RETRY,
    MarketErrorCode.TRANSACTION_DROPPED: Remedy.RETRY,
    MarketErrorCode.BLOCKHASH_EXPIRED: Remedy.FRESH_QUOTE,
    MarketErrorCode.SLIPPAGE_EXCEEDED: Remedy.FRESH_QUOTE,
    MarketErrorCode.INSUFFICIENT_FUNDS: Remedy.NONE,
    MarketErrorCode.POOL_NOT_FOUND: Remedy.NONE,
    MarketErrorCode.POOL_NOT_OPEN: Remedy.NONE,
    MarketErrorCode.INVALID_ORDER: Remedy.NONE,
    MarketErrorCode.ORDER_CLOSED: Remedy.NONE,
    MarketErrorCode.INSUFFICIENT_LIQUIDITY: Remedy.FRESH_QUOTE,
    # A new transaction: a fresh estimate of its compute units, a fresh blockhash.
    MarketErrorCode.COMPUTE_BUDGET_EXCEEDED: Remedy.FRESH_QUOTE,
    MarketErrorCode.TRANSACTION_EXPIRED: Remedy.FRESH_QUOTE,
}
INTERNAL = "INTERNAL"


async def run_attempt(
    records: OrderRecords,
    call: Awaitable[T],
    *,
    order_id: str,
    activity_name: str,
    attempt: int,
    last_attempt: int = MAX_ATTEMPTS,
    activity_max_attempts: int = MAX_ATTEMPTS,
    transaction: str | None = None,
) -> T:
    """Await `call`; on failure record it and raise an ApplicationError whose details
    carry the attempt and the remedy (retry here, fresh quote, or none).

    `attempt`/`last_attempt` count the order's attempts (a fresh quote starts the next
    one); Temporal's own retries of this activity stop at `activity_max_attempts`.
    `transaction`: the signature a submit or confirm is about, so that the failures of two
    transactions are two records even when a re-run workflow task repeats the step's id.
    """
    stage, fee_lamports = None, 0
    try:
        return await call
    except MarketError as error:
        code, reason, remedy = str(error.code), error.message, REMEDIES[error.code]
        stage, fee_lamports = error.stage, error.fee_lamports
        cause: Exception = error
    except Exception as error:  # an infrastructure hiccup: retry the same step
        code, reason, remedy = INTERNAL, f"{type(error).__name__}: {error}", Remedy.RETRY
        cause = error
    if remedy is Remedy.RETRY:  # Temporal retries this very step while it has tries left
        will_retry = activity.info().attempt < activity_max_attempts
    else:
        will_retry = remedy is Remedy.FRESH_QUOTE and attempt < last_attempt
    try:
        await records.attempt_failed(
            order_id=order_id,
            activity_name=activity_name,
            attempt=attempt,
            code=code,
            reason=f"{code}: {reason}",
            retryable=remedy is not Remedy.NONE,
            backoff_ms=(backoff_ms(attempt) if remedy is Remedy.RETRY else 0) if will_retry else None,
            stage=stage,
            fee_lamports=fee_lamports,
            transaction=transaction,
        )
    except Exception:
        log.exception("could not record failed attempt %s of %s for %s", attempt, activity_name, order_id)
    log.warning("%s %s attempt %s failed: %s", order_id, activity_name, attempt, reason)
    raise ApplicationError(
        reason,
        {"attempt": attempt, "code": code, "remedy": str(remedy), "fee_lamports": fee_lamports},
        type=code,
        # Only plain retries are Temporal's; a fresh quote is the workflow's decision.
        non_retryable=remedy is not Remedy.RETRY,
    ) from cause
