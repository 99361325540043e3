"""Domain errors carry their HTTP status and a stable `code`; the API renders every one
as RFC 9457 problem+json (api/problems.py), the CLI prints its title and detail."""

from __future__ import annotations


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


class InvalidInput(DomainError):
    """A request that cannot be carried out as asked: 422 with the field at fault."""

    status, code, title = 422, "invalid_input", "Invalid request"

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message, [{"field": field, "message": message}])
        self.code = code


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


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

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})
