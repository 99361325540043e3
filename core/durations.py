"""Durations as people type them (`30s`, `5m`, `2h`) and as they read them."""

from __future__ import annotations

from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `2h`; ValueError otherwise."""
    if len(text) < 2 or text[-1] not in UNITS or not text[:-1].isdigit():
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 2h")
    return timedelta(seconds=int(text[:-1]) * UNITS[text[-1]])


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )
