"""What the orders domain refuses, each with its HTTP status and stable code."""

from __future__ import annotations

from core.errors import Conflict, DomainError, InvalidInput, NotFound

# Bad order input: 422 with the field at fault and a code such as invalid_amount.
InvalidOrder = InvalidInput


class OrderNotFound(NotFound):
    code, title = "order_not_found", "Order not found"


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class InvalidIdempotencyKey(DomainError):
    status, code, title = 422, "invalid_idempotency_key", "Idempotency-Key not allowed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, [{"field": "Idempotency-Key", "message": detail}])


class IdempotencyRequestInFlight(Conflict):
    code, title = "idempotency_request_in_flight", "Request with this key in flight"


class OrderNotCancellable(Conflict):
    code, title = "order_not_cancellable", "Order can no longer be cancelled"


class InsufficientFunds(DomainError):
    status, code, title = 422, "insufficient_funds", "Insufficient funds"

    def __init__(self, detail: str, field: str = "amount") -> None:
        super().__init__(detail, [{"field": field, "message": detail}])


class TooManyOpenOrders(DomainError):
    status, code, title = 429, "too_many_open_orders", "Too many open orders"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class NothingToReplay(Conflict):
    code, title = "nothing_to_replay", "Nothing to replay"


class QuoteNotFound(NotFound):
    code, title = "quote_not_found", "Quote not found"


class QuoteUsed(Conflict):
    code, title = "quote_used", "Quote already used"


class QuoteExpired(DomainError):
    status, code, title = 422, "quote_expired", "Quote expired"


class QuoteMismatch(DomainError):
    status, code, title = 422, "quote_mismatch", "Order fields contradict the quote"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, [{"field": field, "message": detail}])
