"""Percentiles and the one row type every section reports."""

from __future__ import annotations

import math
from dataclasses import dataclass


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Figure:
    """One measured number: a row of the table and an entry of the JSON."""

    section: str
    metric: str
    value: float | int | str
    unit: str = ""
    vs_floor: float | None = None  # engine figure ÷ the floor's same figure
    note: str = ""


def ratio(value: float, floor: float) -> float | None:
    return value / floor if floor and not math.isnan(floor) and not math.isnan(value) else None
