"""Retry and timeout policy numbers, shared by the workflow (which sets them) and the
activities (which report the backoff a retry will wait)."""

from __future__ import annotations

from datetime import timedelta

# At most 3 attempts per activity, and at most 3 submit tries per order in all.
MAX_ATTEMPTS = 3
INITIAL_INTERVAL = timedelta(milliseconds=500)
BACKOFF_COEFFICIENT = 2.0
MAXIMUM_INTERVAL = timedelta(seconds=10)


def backoff_ms(failed_attempt: int) -> int:
    """How long Temporal waits after `failed_attempt` before the next one."""
    interval = INITIAL_INTERVAL.total_seconds() * 1000 * BACKOFF_COEFFICIENT ** (failed_attempt - 1)
    return int(min(interval, MAXIMUM_INTERVAL.total_seconds() * 1000))
