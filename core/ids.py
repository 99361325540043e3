"""Ids: a prefix (`ord_`, `qt_`, `stg_`) + a 26-character ULID (Crockford base32),
sortable by creation time."""

from __future__ import annotations

import re

from ulid import ULID

ORDER_ID_PATTERN = re.compile(r"^ord_[0-9A-HJKMNP-TV-Z]{26}$")


def new_order_id() -> str:
    return f"ord_{ULID()}"


def is_order_id(value: str) -> bool:
    return bool(ORDER_ID_PATTERN.fullmatch(value))


QUOTE_ID_PATTERN = re.compile(r"qt_[0-9A-HJKMNP-TV-Z]{26}")


def new_quote_id() -> str:
    return f"qt_{ULID()}"


def is_quote_id(value: str) -> bool:
    return bool(QUOTE_ID_PATTERN.fullmatch(value))


STRATEGY_ID_PREFIX = "stg_"
STRATEGY_ID_PATTERN = re.compile(rf"{STRATEGY_ID_PREFIX}[0-9A-HJKMNP-TV-Z]{{26}}")


def new_strategy_id() -> str:
    return f"{STRATEGY_ID_PREFIX}{ULID()}"


def is_strategy_id(value: str) -> bool:
    return bool(STRATEGY_ID_PATTERN.fullmatch(value))
