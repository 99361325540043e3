"""Domain errors carry their HTTP status and code; one set of handlers renders every
error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://order-engine.dev/problems/"


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


class InvalidOrder(DomainError):
    status, code, title = 422, "invalid_order", "Invalid order"

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message, [{"field": field, "message": message}])
        self.code = code


class OrderNotFound(DomainError):
    status, code, title = 404, "order_not_found", "Order not found"


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class IdempotencyRequestInFlight(DomainError):
    status, code, title = 409, "idempotency_request_in_flight", "Request with this key in flight"


class OrderNotCancellable(DomainError):
    status, code, title = 409, "order_not_cancellable", "Order can no longer be cancelled"


class Unauthenticated(DomainError):
    status, code, title = 401, "unauthenticated", "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class OperatorRequired(DomainError):
    status, code, title = 403, "operator_required", "Operator key required"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


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
    "expires_in_s": "invalid_expiry",
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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal_error", "Internal server error", "an unexpected error occurred")
