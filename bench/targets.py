"""The issue's targets, each against its measured figure (ratios within the same run)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.engine import ENGINE_CONC, ENGINE_SEQ, LOAD
from bench.floor import FLOOR_CONC, FLOOR_SEQ
from bench.sharing import FAIR, FLOOD, NEVER_FILLING, WATCHER
from bench.spec_limits import SPEC
from bench.stats import Figure
from bench.streaming import IDLE, STREAMING, STREAMING_ONE

TARGETS = "targets"
Lookup = Callable[[str, str], float]  # (table, metric prefix) → the figure's value, NaN if none


@dataclass(frozen=True)
class Target:
    name: str
    measured: Callable[[Lookup], float]
    target: str  # as printed: "≤ 30 ms"
    bound: float
    at_most: bool  # the figure must stay at or below `bound` (else at or above)

    def met(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound


def figure(table: str, metric: str) -> Callable[[Lookup], float]:
    return lambda value: value(table, metric)


TARGET_LIST = [
    Target(
        "engine p50 ÷ floor p50",
        lambda value: value(ENGINE_SEQ, "latency p50") / value(FLOOR_SEQ, "latency p50"),
        "≤ 0.5 (stretch 0.25)",
        0.5,
        at_most=True,
    ),
    Target(
        "engine orders/s ÷ floor workflows/s",
        lambda value: value(ENGINE_CONC, "throughput") / value(FLOOR_CONC, "throughput"),
        "≥ 1.2 (stretch 1.5)",
        1.2,
        at_most=False,
    ),
    Target("spec limits: orders/min", figure(SPEC, "executed per minute"), "≥ 90", 90, at_most=False),
    Target("spec limits: most in any 60 s", figure(SPEC, "most admitted"), "≤ 104", 104, at_most=True),
    Target("POST /orders p99 at 200/s", figure(LOAD, "202 latency p99"), "≤ 30 ms", 30, at_most=True),
    Target(
        "WebSocket delivery p99, 1 000 subscribed, orders one at a time",
        figure(STREAMING_ONE, "delivery p99"),
        "≤ 20 ms",
        20,
        at_most=True,
    ),
    Target(
        "WebSocket delivery p99, 1 000 subscribed, 50 orders at once",
        figure(STREAMING, "delivery p99"),
        "≤ 20 ms",
        20,
        at_most=True,
    ),
    Target("API rss, 5 000 idle WebSockets", figure(IDLE, "API rss"), "< 500 MB", 500, at_most=True),
    Target(
        f"another owner behind a {FLOOD}-order flood, p50",
        figure(FAIR, "the other owner"),
        "≤ 5 s",
        5,
        at_most=True,
    ),
    Target(
        f"market p50 with {NEVER_FILLING} never-filling limits ÷ without",
        figure(WATCHER, "ratio"),
        "≤ 1.5",
        1.5,
        at_most=True,
    ),
    Target(
        "a limit order made fillable fills within", figure(WATCHER, "a limit order"), "≤ 2 s", 2, at_most=True
    ),
]


def target_figures(value: Lookup, *, unmeasured: bool = True) -> list[Figure]:
    """A row per target; those whose figures were not measured only with `unmeasured`."""
    rows = []
    for target in TARGET_LIST:
        measured = target.measured(value)
        if math.isnan(measured) and not unmeasured:
            continue
        met = "met" if target.met(measured) else "MISSED"
        rows.append(Figure(TARGETS, target.name, measured, note=f"target {target.target}: {met}"))
    return rows
