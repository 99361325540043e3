"""What the strategies domain refuses, each with its HTTP status and stable code."""

from __future__ import annotations

from core.errors import Conflict, DomainError, NotFound


class StrategyNotFound(NotFound):
    code, title = "strategy_not_found", "Strategy not found"


class StrategyFinished(Conflict):
    code, title = "strategy_finished", "Strategy already ended"


class StrategyStateConflict(Conflict):
    code, title = "strategy_state_conflict", "Strategy not in a state for this"


class TooManyStrategies(DomainError):
    status, code, title = 429, "too_many_strategies", "Too many running strategies"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "60"})
