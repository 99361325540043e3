"""Durations as people type them (`30s`, `5m`, `2h`) and as they read them."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
LONGEST = timedelta(days=3650)
_DURATION = re.compile(r"([0-9]{1,9})([smhd])")


def parse_duration(text: str, longest: timedelta = LONGEST) -> timedelta:
    """`30s`, `5m`, `2h`, `7d`, at most `longest`; ValueError otherwise."""
    matched = _DURATION.fullmatch(text)
    if matched is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 2h or 7d")
    duration = timedelta(seconds=int(matched[1]) * UNITS[matched[2]])
    if duration > longest:
        raise ValueError(f"{text!r} is longer than {longest.days} days")
    return duration


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )
