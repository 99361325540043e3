"""What the simulated venues and chain answer when something goes wrong."""

from __future__ import annotations

from enum import StrEnum


class Remedy(StrEnum):
    RETRY = "retry"  # the same step again, after a backoff (Temporal's activity retry)
    FRESH_QUOTE = "fresh_quote"  # a new attempt from ROUTING with fresh quotes
    NONE = "none"  # no retry can fix it: the order fails now


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


REMEDIES: dict[MarketErrorCode, Remedy] = {
    MarketErrorCode.RATE_LIMITED: Remedy.RETRY,
    MarketErrorCode.ACCOUNT_IN_USE: Remedy.RETRY,
    MarketErrorCode.TRANSACTION_DROPPED: Remedy.RETRY,
    MarketErrorCode.BLOCKHASH_EXPIRED: Remedy.FRESH_QUOTE,
    MarketErrorCode.SLIPPAGE_EXCEEDED: Remedy.FRESH_QUOTE,
    MarketErrorCode.INSUFFICIENT_FUNDS: Remedy.NONE,
    MarketErrorCode.POOL_NOT_FOUND: Remedy.NONE,
    MarketErrorCode.POOL_NOT_OPEN: Remedy.NONE,
    MarketErrorCode.INVALID_ORDER: Remedy.NONE,
}


class MarketError(Exception):
    def __init__(self, code: MarketErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def remedy(self) -> Remedy:
        return REMEDIES[self.code]
