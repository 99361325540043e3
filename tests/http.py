"""What a client checks of an HTTP answer."""

from __future__ import annotations

import httpx


def is_problem(response: httpx.Response, status: int, code: str) -> bool:
    """An RFC 9457 problem with this status and stable `code`."""
    return (
        response.status_code == status
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["code"] == code
    )
