"""What the simulated venues and chain answer when something goes wrong. What a failure
calls for (retry, a fresh quote, nothing) is decided by the activities (activities/attempts.py)."""

from __future__ import annotations

from enum import StrEnum


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


class MarketError(Exception):
    def __init__(self, code: MarketErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
