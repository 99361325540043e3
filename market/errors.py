"""What the simulated venues and chain answer when something goes wrong. What a failure
calls for (retry, a fresh quote, nothing) is decided by the activities (activities/attempts.py)."""

from __future__ import annotations

from enum import StrEnum

from core.domain import FailureStage


class MarketErrorCode(StrEnum):
    RATE_LIMITED = "RATE_LIMITED"  # a venue's quote endpoint answered 429
    ACCOUNT_IN_USE = "ACCOUNT_IN_USE"
    TRANSACTION_DROPPED = "TRANSACTION_DROPPED"
    BLOCKHASH_EXPIRED = "BLOCKHASH_EXPIRED"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    POOL_NOT_FOUND = "POOL_NOT_FOUND"
    POOL_NOT_OPEN = "POOL_NOT_OPEN"
    INVALID_ORDER = "INVALID_ORDER"
    ORDER_CLOSED = "ORDER_CLOSED"  # its reservation was released: the order ended
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"  # a pool cannot fill a leg at all
    COMPUTE_BUDGET_EXCEEDED = "COMPUTE_BUDGET_EXCEEDED"  # its work exceeded its compute-unit limit
    # Not landed by its last valid block height: it never can, it paid nothing.
    TRANSACTION_EXPIRED = "TRANSACTION_EXPIRED"


class MarketError(Exception):
    """`stage`: where a transaction's failure happened (None: not a transaction's);
    `fee_lamports`: what it paid all the same (a transaction that landed and failed)."""

    def __init__(
        self,
        code: MarketErrorCode,
        message: str,
        *,
        stage: FailureStage | None = None,
        fee_lamports: int = 0,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.stage = stage
        self.fee_lamports = fee_lamports
