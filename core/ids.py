"""Order ids: `ord_` + a 26-character ULID (Crockford base32), sortable by creation time."""

from __future__ import annotations

import re

from ulid import ULID

ORDER_ID_PATTERN = re.compile(r"^ord_[0-9A-HJKMNP-TV-Z]{26}$")


def new_order_id() -> str:
    return f"ord_{ULID()}"


def is_order_id(value: str) -> bool:
    return bool(ORDER_ID_PATTERN.fullmatch(value))
