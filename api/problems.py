"""The one place errors become responses: every domain error (core/errors.py, which
carries its status and code), every validation error and every HTTP error is rendered
as RFC 9457 problem+json. A dependency that is down answers 503, never 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from core.errors import DomainError
from market.errors import MarketError, MarketErrorCode

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://order-engine.dev/problems/"


def problem(
    status: int, code: str, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


# Pydantic error locations → the code a client can act on.
_FIELD_CODES = {
    "amount": "invalid_amount",
    "token_in": "invalid_token",
    "token_out": "invalid_token",
    "slippage_bps": "invalid_slippage",
    "type": "invalid_type",
    "limit_price": "invalid_limit_price",
    "trigger_price": "invalid_trigger_price",
    "trailing_bps": "invalid_trailing_bps",
    "expires_in_s": "invalid_expiry",
    "swap_mode": "invalid_swap_mode",
    "dexes": "unknown_dex",
    "max_hops": "invalid_max_hops",
    "quote_id": "invalid_quote_id",
    # strategies
    "slices": "invalid_slices",
    "interval_s": "invalid_interval",
    "every": "invalid_every",
    "orders": "invalid_orders",
    "amount_per_order": "invalid_amount_per_order",
    "take_profit_price": "invalid_take_profit_price",
    "stop_loss_price": "invalid_stop_loss_price",
}


def _validation_problem(error: RequestValidationError) -> JSONResponse:
    errors: list[dict[str, str]] = []
    code = "validation_error"
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(location) or "body"
        kind = item.get("type", "")
        if kind == "json_invalid":
            return problem(422, "malformed_json", "Malformed JSON", "the request body is not valid JSON")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": field, "message": message})
        if code == "validation_error":
            if kind == "extra_forbidden":
                code = "unknown_field"
            elif kind == "missing":
                code = "missing_field"
            elif kind == "model_attributes_type" or kind == "dict_type":
                code = "malformed_body"
            else:
                code = _FIELD_CODES.get(location[0] if location else "", "validation_error")
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, code, "Invalid request", detail, errors)


_HTTP_PROBLEMS = {
    404: ("not_found", "Not Found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    413: ("payload_too_large", "Request body too large"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, error: DomainError) -> JSONResponse:
        response = problem(error.status, error.code, error.title, error.detail, error.errors)
        response.headers.update(error.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        return _validation_problem(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_PROBLEMS.get(error.status_code, ("http_error", str(error.detail)))
        response = problem(error.status_code, code, title, str(error.detail))
        if error.headers:
            response.headers.update(error.headers)
        return response

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)  # every connection busy, or PostgreSQL hanging
    @app.exception_handler(OSError)  # e.g. connection refused while PostgreSQL restarts
    @app.exception_handler(TimeoutError)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    @app.exception_handler(RPCError)
    async def _dependency_down(_: Request, error: Exception) -> JSONResponse:
        # PostgreSQL, Redis or Temporal is unreachable (restarting?): worth a retry.
        log.warning("a dependency is unavailable: %s: %s", type(error).__name__, error)
        response = problem(
            503,
            "service_unavailable",
            "Service unavailable",
            "a storage or workflow service is unreachable; retry",
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(MarketError)
    async def _market(_: Request, error: MarketError) -> JSONResponse:
        # A real cluster read on the request's path (pools, the owner's balances) failed.
        if error.code in (MarketErrorCode.RPC_UNAVAILABLE, MarketErrorCode.RATE_LIMITED):
            log.warning("the chain is unavailable: %s", error)
            response = problem(503, "chain_unavailable", "Chain unavailable", f"{error.message}; retry")
            response.headers["Retry-After"] = "1"
            return response
        return problem(422, str(error.code).lower(), "Refused by the market", error.message)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal_error", "Internal server error", "an unexpected error occurred")
