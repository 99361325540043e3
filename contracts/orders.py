"""The order workflow's contract: its input and outcome, the signal and update clients
send it, and one dataclass per activity input and result.

Results of activities and the workflow's input are read back from recorded histories
when a workflow replays, so their fields only ever grow (with defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from contracts.landing import LandingReport, LandingRequest
from core.domain import OrderStatus, OrderType, SwapMode
from core.order_kinds import WaitKind

# Names by which clients reach the workflow without importing its code.
ORDER_WORKFLOW = "OrderWorkflow"
TRIGGER_SIGNAL = "trigger"
CANCEL_UPDATE = "cancel"
STATUS_QUERY = "status"


@dataclass
class OrderInput:
    order_id: str
    order_type: OrderType
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
    # Priority fee, tip, simulation (None: accepted before the fee market; no simulation).
    landing: LandingRequest | None = None
    swap_mode: SwapMode = SwapMode.EXACT_IN
    amount_out: int | None = None  # exact-out: what the order receives (amount_in: at most)
    max_hops: int = 1  # orders accepted before multi-hop routing trade their direct pair
    dexes: list[str] | None = None
    # An order placed from a quote: its route for the first attempt, and its bounds.
    quoted_route: RouteDecision | None = None
    trigger_price: str | None = None  # stop-loss, take-profit (token_out per token_in)
    trailing_bps: int | None = None  # trailing stop


@dataclass
class OrderOutcome:
    order_id: str
    status: OrderStatus
    tx_hash: str | None = None
    failure_reason: str | None = None


class TriggerReason(StrEnum):
    POOL_OPEN = "pool_open"
    LIMIT_REACHED = "limit_reached"
    PRICE_TRIGGERED = "price_triggered"  # a stop, take-profit or trailing stop fired


@dataclass
class Trigger:
    """The market watcher's signal: what a waiting order waited for has happened."""

    reason: TriggerReason
    decimals_out: int | None = None  # a sniper's token, now listed


# -- steps ------------------------------------------------------------------------


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
    pool: str | None = None  # the pool id
    # Multi-hop routes: the leg's own pair, its hop, its share of the hop (bps), its fee.
    token_in: str | None = None
    token_out: str | None = None
    hop: int = 0
    share_bps: int = 10_000
    fee_amount: int = 0


@dataclass
class RouteDecision:
    selected_dex: str
    legs: list[RouteLeg]
    expected_amount_out: int
    min_amount_out: int
    swap_mode: SwapMode = SwapMode.EXACT_IN
    expected_amount_in: int | None = None  # exact-out: what the route needs
    max_amount_in: int | None = None  # exact-out: the most it may spend


@dataclass
class PlanRequest:
    """Quote the venues and plan the route (multi-hop, exact-in or exact-out) in one step."""

    order_id: str
    token_in: str
    token_out: str
    amount: int  # exact-in: of token_in; exact-out: of token_out
    slippage_bps: int
    swap_mode: SwapMode = SwapMode.EXACT_IN
    max_hops: int = 3
    dexes: list[str] | None = None
    # An order from a quote never fills outside the quote's bounds.
    min_amount_out: int | None = None
    max_amount_in: int | None = None


@dataclass
class PlanResult:
    quotes: list[QuoteResult]  # each venue's quote of the direct pair (none without one)
    route: RouteDecision


@dataclass
class BuildRequest:
    order_id: str
    attempt: int
    token_in: str
    token_out: str
    route: RouteDecision
    landing: LandingRequest | None = None
    # Earlier attempts of the order whose transaction did not land: each raises the price.
    escalation: int = 0


@dataclass
class BuiltTransaction:
    tx_hash: str  # the transaction's first signature, base58
    order_id: str
    idempotency_key: str
    raw: str  # the signed transaction, base64
    recent_blockhash_slot: int
    # What it asks of the runtime and pays (also in `raw`; here for the history's reader).
    compute_unit_limit: int = 0
    micro_lamports_per_cu: int = 0
    tip_lamports: int = 0


@dataclass
class SubmitRequest:
    tx: BuiltTransaction
    # Submit tries already spent by earlier attempts of this order: the order-level
    # attempt of this try is attempts_before + Temporal's activity attempt.
    attempts_before: int
    max_attempts: int
    simulate: bool = False  # against the current pools first: one that would fail is not sent


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
    # What executed, leg by leg (results recorded before these existed have none).
    legs: list[RouteLeg] = field(default_factory=list)
    min_amount_out: int | None = None
    report: LandingReport | None = None  # fees, compute units, slots (None before the fee market)


@dataclass
class CloseRequest:
    """Before an order is recorded FAILED: did its transaction land after all?"""

    order_id: str


# -- transitions: what the record step is told about each lifecycle step ----------


@dataclass
class RoutingStarted:
    attempt: int


@dataclass
class Routed:
    attempt: int
    quotes: list[QuoteResult]
    route: RouteDecision
    decimals_in: int
    decimals_out: int


@dataclass
class Submitted:
    tx_hash: str
    attempt: int


@dataclass
class Confirmed:
    tx_hash: str
    amount_in: int
    amount_out: int
    decimals_in: int
    decimals_out: int
    attempts: int
    # The legs that executed and their minimum, from the chain: what is recorded is what
    # executed, also when a rerun after a crash found an earlier run's transaction.
    legs: list[RouteLeg] = field(default_factory=list)
    min_amount_out: int | None = None
    report: LandingReport | None = None
    expected_amount_out: int | None = None  # what the route that landed expected
    landing: LandingRequest | None = None  # what the order asked of landing
    token_in: str | None = None
    token_out: str | None = None


@dataclass
class Failed:
    reason: str
    attempts: int


@dataclass
class Waiting:
    kind: WaitKind
    token_in: str
    token_out: str
    expires_at: float  # epoch seconds
    limit_price: str | None = None
    trigger_price: str | None = None
    trailing_bps: int | None = None
    order_type: OrderType | None = None


@dataclass
class Ended:
    """CANCELLED or EXPIRED while waiting (or before admission)."""

    reason: str


@dataclass
class Reopened:
    """An operator's replay of a failed order: the n-th run."""

    run: int


@dataclass
class RetryScheduled:
    """A failed try that another try follows (the status stays)."""

    activity: str
    attempt: int
    reason: str
    backoff_ms: int


@dataclass
class TransitionRequest:
    """Record a lifecycle step: the order row and its next event in PostgreSQL, then
    Redis. Exactly one of the step fields is set; `event_key` is unique per order, so a
    retried record never makes a second event."""

    order_id: str
    event_key: str
    status: OrderStatus | None  # None keeps the current status (a retry event)
    routing: RoutingStarted | None = None
    routed: Routed | None = None
    submitted: Submitted | None = None
    confirmed: Confirmed | None = None
    failed: Failed | None = None
    waiting: Waiting | None = None
    ended: Ended | None = None
    reopened: Reopened | None = None
    retry: RetryScheduled | None = None

    @classmethod
    def of(cls, order_id: str, event_key: str, status: OrderStatus | None, step: Step) -> TransitionRequest:
        request = cls(order_id, event_key, status)
        match step:
            case RoutingStarted():
                request.routing = step
            case Routed():
                request.routed = step
            case Submitted():
                request.submitted = step
            case Confirmed():
                request.confirmed = step
            case Failed():
                request.failed = step
            case Waiting():
                request.waiting = step
            case Ended():
                request.ended = step
            case Reopened():
                request.reopened = step
            case RetryScheduled():
                request.retry = step
        return request

    @property
    def step(self) -> Step | None:
        steps = (
            self.routing,
            self.routed,
            self.submitted,
            self.confirmed,
            self.failed,
            self.waiting,
            self.ended,
            self.reopened,
            self.retry,
        )
        return next((step for step in steps if step is not None), None)


Step = RoutingStarted | Routed | Submitted | Confirmed | Failed | Waiting | Ended | Reopened | RetryScheduled
