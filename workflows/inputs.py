"""Inputs and results of the order workflow and its activities: one dataclass each.

Amounts are integers in base units; human-readable decimal strings are made only
where something is shown (events, the order row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OrderInput:
    order_id: str
    order_type: str
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int
    # Token decimals travel with the order: workflow code must not look them up. A
    # sniper's token may not be listed yet: its decimals arrive with the trigger.
    decimals_in: int
    decimals_out: int | None
    limit_price: str | None = None  # limit orders: token_out per token_in
    expires_at: float | None = None  # limit and sniper orders: epoch seconds
    waits: int = 0  # WAITING spells so far (carried across continue-as-new)
    replay: int = 0  # 0 for the first run; n for an operator's n-th replay of a failed order


@dataclass
class OrderOutcome:
    order_id: str
    status: str
    tx_hash: str | None = None
    failure_reason: str | None = None


@dataclass
class Trigger:
    """The market watcher's signal: what a waiting order waited for has happened."""

    reason: str
    decimals_out: int | None = None  # a sniper's token, now listed


@dataclass
class TransitionRequest:
    """Record a lifecycle step: order row + event in PostgreSQL, then Redis."""

    order_id: str
    event_key: str  # unique per order: a retried record never makes a second event
    status: str | None  # None keeps the current status (a retry event)
    changes: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class AdmitRequest:
    order_id: str


@dataclass
class QuoteRequest:
    order_id: str
    dex: str
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int


@dataclass
class QuoteResult:
    dex: str
    amount_in: int
    amount_out: int
    min_amount_out: int
    fee_bps: int
    price_impact_bps: int
    slot: int
    # [amount_in, amount_out] at every amount the router may ask about (5 % splits).
    curve: list[list[int]]


@dataclass
class RouteRequest:
    order_id: str
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int
    quotes: list[QuoteResult]


@dataclass
class RouteLeg:
    dex: str
    amount_in: int
    amount_out: int


@dataclass
class RouteDecision:
    selected_dex: str
    legs: list[RouteLeg]
    expected_amount_out: int
    min_amount_out: int


@dataclass
class BuildRequest:
    order_id: str
    attempt: int
    token_in: str
    token_out: str
    route: RouteDecision


@dataclass
class BuiltTransaction:
    tx_hash: str  # the transaction's first signature, base58
    order_id: str
    idempotency_key: str
    raw: str  # the signed transaction, base64
    recent_blockhash_slot: int


@dataclass
class SubmitRequest:
    tx: BuiltTransaction
    # Submit tries already spent by earlier attempts of this order: the order-level
    # attempt of this try is attempts_before + Temporal's activity attempt.
    attempts_before: int
    max_attempts: int


@dataclass
class SubmitResult:
    tx_hash: str
    attempt: int


@dataclass
class ConfirmRequest:
    tx: BuiltTransaction
    attempt: int
    max_attempts: int


@dataclass
class ConfirmResult:
    tx_hash: str
    amount_in: int
    amount_out: int
    slot: int


@dataclass
class BackgroundTradingRequest:
    duration_s: float


@dataclass
class WatchRequest:
    duration_s: float
