"""Retry and timeout numbers, shared by the workflow (which sets them) and the
activities (which report the backoff a retry will wait), what a failure calls for, and
how fast an order resumes after a fault (the timeouts that bound it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

# At most 3 attempts per activity, and at most 3 submit tries per order in all.
MAX_ATTEMPTS = 3
INITIAL_INTERVAL = timedelta(milliseconds=500)
BACKOFF_COEFFICIENT = 2.0
MAXIMUM_INTERVAL = timedelta(seconds=10)

# An order interrupted by any single fault (a worker killed, PostgreSQL or Redis
# restarted) makes progress again within this; `make chaos` measures it.
RECOVERY_PROMISE = timedelta(seconds=5)
# A workflow task that died with its worker (mid local activities: everything after
# admission) is retried on another worker after this: the longest wait of a worker kill.
# The SDK heartbeats a task whose local activities run long at 80% of it, so a slow step
# never times its task out; but a live worker too starved to answer within it loses the
# task, and after 3 lost tries the server adds 5 s, 10 s, … to each next one. 2 s did
# that on a loaded machine (86 spurious timeouts in a 150-order `make chaos`).
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=3)
# A workflow task queued on a dead worker's sticky queue moves to the shared queue after this.
STICKY_TO_START = timedelta(seconds=1)
# A regular activity (admission) whose worker died is retried after this; they heartbeat
# every 0.5 s while they run (activities/interceptors.py).
HEARTBEAT_TIMEOUT = timedelta(seconds=2)
# Recording keeps trying while PostgreSQL or Redis restarts: the first retry after this,
# then doubling up to the maximum, which is how long a record may lag behind a store
# that is back.
RECORD_FIRST_RETRY = timedelta(milliseconds=200)
RECORD_MAXIMUM_INTERVAL = timedelta(seconds=1)
# Not a timeout: what a recovery spends besides them, a live worker taking the task and
# running again the step the order was in (a submit or a confirm: ~0.5 s simulated).
RERUN_ALLOWANCE = timedelta(milliseconds=1500)


class Remedy(StrEnum):
    """What a failed step calls for; carried in the failure's details to the workflow."""

    RETRY = "retry"  # the same step again, after a backoff (Temporal's activity retry)
    FRESH_QUOTE = "fresh_quote"  # a new attempt from ROUTING with fresh quotes
    NONE = "none"  # no retry can fix it: the order fails now


def backoff_ms(failed_attempt: int) -> int:
    """How long Temporal waits after `failed_attempt` before the next one."""
    interval = INITIAL_INTERVAL.total_seconds() * 1000 * BACKOFF_COEFFICIENT ** (failed_attempt - 1)
    return int(min(interval, MAXIMUM_INTERVAL.total_seconds() * 1000))


class FaultKind(StrEnum):
    """The faults `make chaos` injects, one at a time."""

    WORKER = "worker"  # a worker process SIGKILLed
    API = "api"  # an API process SIGKILLed
    REDIS = "redis"  # Redis restarted
    POSTGRES = "postgres"  # PostgreSQL stopped, and started again a second later


@dataclass(frozen=True)
class Wait:
    """One timeout an interrupted order waits out, on one path of recovery."""

    what: str
    seconds: float


@dataclass(frozen=True)
class RecoveryPath:
    """Where an order was when the fault hit, and what it then waits for, in order."""

    where: str
    waits: tuple[Wait, ...]

    @property
    def seconds(self) -> float:
        return sum(wait.seconds for wait in self.waits)

    def __str__(self) -> str:
        waits = " + ".join(f"{w.what} {w.seconds:g} s" for w in self.waits)
        return f"{self.where}: {waits or 'no timeout'}"


def recovery_paths(kind: FaultKind) -> tuple[RecoveryPath, ...]:
    """Each path back to progress after one fault of `kind`: the timeouts it waits out,
    from the configuration, and the allowance for running the interrupted step again."""
    s = timedelta.total_seconds
    rerun = Wait("the step run again", s(RERUN_ALLOWANCE))
    if kind is FaultKind.WORKER:
        return (
            RecoveryPath(
                "a workflow task running on it (any step after admission)",
                (Wait("workflow task timeout", s(WORKFLOW_TASK_TIMEOUT)), rerun),
            ),
            RecoveryPath(
                "a workflow task queued for it",
                (Wait("sticky schedule-to-start", s(STICKY_TO_START)), rerun),
            ),
            RecoveryPath(
                "admission running on it",
                (
                    Wait("heartbeat timeout", s(HEARTBEAT_TIMEOUT)),
                    Wait("first retry", s(RECORD_FIRST_RETRY)),
                    rerun,
                ),
            ),
        )
    if kind is FaultKind.API:
        # A placing request killed between storing the order and starting its workflow
        # is not covered: its retry waits out the placement's in-flight window.
        return (RecoveryPath("an accepted order: workers execute it, no API", ()),)
    # Beside the restart itself: a store that is back is found by the record's next retry.
    return (
        RecoveryPath(
            f"a record written while {kind} restarts",
            (Wait("record retry interval", s(RECORD_MAXIMUM_INTERVAL)), rerun),
        ),
    )


def recovery_bound(kind: FaultKind) -> RecoveryPath:
    """The longest path of `recovery_paths(kind)`: what bounds an order's recovery."""
    return max(recovery_paths(kind), key=lambda path: path.seconds)
