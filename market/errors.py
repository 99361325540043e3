"""What the simulated venues and chain answer when something goes wrong. What a failure
calls for (retry, a fresh quote, nothing) is decided by the activities (activities/attempts.py)."""

from __future__ import annotations

from contracts.failures import MarketErrorCode
from core.domain import FailureStage

__all__ = ["MarketError", "MarketErrorCode"]


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
