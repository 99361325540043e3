"""Retry and timeout numbers, shared by the workflow (which sets them) and the
activities (which report the backoff a retry will wait), and what a failure calls for."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

# At most 3 attempts per activity, and at most 3 submit tries per order in all.
MAX_ATTEMPTS = 3
INITIAL_INTERVAL = timedelta(milliseconds=500)
BACKOFF_COEFFICIENT = 2.0
MAXIMUM_INTERVAL = timedelta(seconds=10)


class Remedy(StrEnum):
    """What a failed step calls for; carried in the failure's details to the workflow."""

    RETRY = "retry"  # the same step again, after a backoff (Temporal's activity retry)
    FRESH_QUOTE = "fresh_quote"  # a new attempt from ROUTING with fresh quotes
    NONE = "none"  # no retry can fix it: the order fails now


def backoff_ms(failed_attempt: int) -> int:
    """How long Temporal waits after `failed_attempt` before the next one."""
    interval = INITIAL_INTERVAL.total_seconds() * 1000 * BACKOFF_COEFFICIENT ** (failed_attempt - 1)
    return int(min(interval, MAXIMUM_INTERVAL.total_seconds() * 1000))
