"""SQLModel tables. The schema changes only through Alembic migrations (`migrations/`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from core.domain import (
    FailureStage,
    OrderStatus,
    OrderType,
    ReservationState,
    StrategyStatus,
    StrategyType,
    SwapMode,
    WalletCustody,
)

# Token amounts up to 2^64 base units with up to 18 decimals, exact.
AMOUNT = Numeric(40, 18)

E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E], Generic[E]):
    """A StrEnum stored as its value in a VARCHAR column, read back as the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_orders_owner_idempotency_key"),
        Index("ix_orders_owner_id", "owner", "id"),
        Index(
            "ix_orders_open_owner",
            "owner",
            postgresql_where=text("status NOT IN ('CONFIRMED', 'FAILED', 'CANCELLED', 'EXPIRED')"),
        ),
        Index("ix_orders_status", "status"),
        Index("ix_orders_parent_id", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
    )

    id: str = Field(primary_key=True, max_length=30)
    owner: str = Field(max_length=64)
    type: OrderType = Field(sa_column=Column(EnumText(OrderType, 16), nullable=False))
    status: OrderStatus = Field(sa_column=Column(EnumText(OrderStatus, 16), nullable=False))
    token_in: str = Field(max_length=16)
    token_out: str = Field(max_length=16)
    amount: Decimal = Field(sa_column=Column(AMOUNT, nullable=False))
    slippage_bps: int
    limit_price: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    quotes: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB))
    route: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB))
    selected_dex: str | None = Field(default=None, max_length=16)
    min_amount_out: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    amount_out: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    executed_price: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    tx_hash: str | None = Field(default=None, max_length=100)
    attempts: int = 0
    failure_reason: str | None = None
    # What the order asked of landing (priority fee, tip, simulate) and, once confirmed,
    # how it landed (fees, compute units, slots, slippage, sandwiched).
    landing: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    execution: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    # Exact-out orders receive `amount` of token_out and spend at most max_amount_in.
    swap_mode: SwapMode = Field(
        default=SwapMode.EXACT_IN,
        sa_column=Column(EnumText(SwapMode, 16), nullable=False, server_default="exact_in"),
    )
    max_amount_in: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    amount_in_filled: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    max_hops: int = Field(default=3, sa_column=Column(SmallInteger, nullable=False, server_default="1"))
    dexes: list[str] | None = Field(default=None, sa_column=Column(JSONB))
    # Stop-loss and take-profit: the price that fires them. A trailing stop: its distance,
    # the best price it has seen, and so its trigger (which only ever rises).
    trigger_price: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    trailing_bps: int | None = None
    peak_price: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    # The strategy that placed it (a child order of its workflow), if any.
    parent_id: str | None = Field(default=None, max_length=30)
    # Placed from a quote: {"quote_id", "route"} (the quoted route, its bounds).
    quote: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    # The seq of the last event: the snapshot state is "after event last_seq".
    last_seq: int = 0
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    # Set once the workflow has been started: before that, a request with the same
    # Idempotency-Key is still in flight (409).
    accepted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class OrderEvent(SQLModel, table=True):
    """Append-only lifecycle log; backs `/orders/{id}/events` and WebSocket `after_seq`."""

    __tablename__ = "order_events"
    __table_args__ = (
        UniqueConstraint("order_id", "seq", name="uq_order_events_order_seq"),
        # A retried write carries the same key and so never becomes a second event.
        UniqueConstraint("order_id", "event_key", name="uq_order_events_order_event_key"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    order_id: str = Field(foreign_key="orders.id", max_length=30)
    seq: int
    status: OrderStatus = Field(sa_column=Column(EnumText(OrderStatus, 16), nullable=False))
    event_key: str = Field(max_length=200)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class OrderFailure(SQLModel, table=True):
    """One row per failed attempt of any activity (never stored on the order row)."""

    __tablename__ = "order_failures"
    __table_args__ = (
        UniqueConstraint("order_id", "failure_key", name="uq_order_failures_order_key"),
        Index("ix_order_failures_order_id", "order_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    order_id: str = Field(foreign_key="orders.id", max_length=30)
    failure_key: str = Field(max_length=200)
    activity: str = Field(max_length=64)
    attempt: int
    code: str = Field(max_length=64)
    reason: str
    retryable: bool
    # A transaction's failure: where (simulation, landing, chain) and the fee it paid.
    stage: FailureStage | None = Field(
        default=None, sa_column=Column(EnumText(FailureStage, 16), nullable=True)
    )
    fee_lamports: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class MarketPool(SQLModel, table=True):
    """One simulated pool; every process reads and trades the same state."""

    __tablename__ = "market_pools"

    pool_id: str = Field(primary_key=True, max_length=64)
    dex: str = Field(max_length=16)
    pair: str = Field(max_length=32)
    state: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Wallet(SQLModel, table=True):
    """An owner's wallet: its address and keypair. A simulated wallet keeps its seed in
    the clear; an owner's own keypair held for the real chain is stored only sealed (a
    Fernet token under ORDER_ENGINE_WALLET_KEY, wallets/custody.py), never as bytes."""

    __tablename__ = "wallets"
    __table_args__ = (
        # A held wallet has a sealed keypair and no seed; a simulated one the reverse.
        CheckConstraint(
            "(custody = 'SIMULATED' AND sealed_keypair IS NULL AND seed <> '')"
            " OR (custody = 'HELD' AND sealed_keypair IS NOT NULL AND seed = '')",
            name="ck_wallets_custody_keys",
        ),
    )

    owner: str = Field(primary_key=True, max_length=64)
    address: str = Field(max_length=64, unique=True)
    seed: str = Field(max_length=64, repr=False)  # simulated: hex of the 32-byte ed25519 seed; held: ''
    custody: WalletCustody = Field(
        default=WalletCustody.SIMULATED,
        sa_column=Column(
            EnumText(WalletCustody, 16), nullable=False, server_default=WalletCustody.SIMULATED.value
        ),
    )
    sealed_keypair: str | None = Field(default=None, sa_column=Column(Text, nullable=True), repr=False)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class WalletBalance(SQLModel, table=True):
    """One token of one owner's wallet, in base units: `total` on chain, of which
    `reserved` is promised to open orders; available = total - reserved."""

    __tablename__ = "wallet_balances"
    __table_args__ = (
        CheckConstraint("reserved >= 0 AND total >= reserved", name="ck_wallet_balances_covered"),
    )

    owner: str = Field(primary_key=True, max_length=64, foreign_key="wallets.owner")
    token: str = Field(primary_key=True, max_length=16)
    total: Decimal = Field(sa_column=Column(Numeric(40, 0), nullable=False))
    reserved: Decimal = Field(default=Decimal(0), sa_column=Column(Numeric(40, 0), nullable=False))


class Reservation(SQLModel, table=True):
    """What an open order may spend, reserved when it was accepted (one per order)."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_owner_state", "owner", "state"),)

    order_id: str = Field(primary_key=True, max_length=30, foreign_key="orders.id")
    owner: str = Field(max_length=64)
    token: str = Field(max_length=16)
    amount: Decimal = Field(sa_column=Column(Numeric(40, 0), nullable=False))
    fee_lamports: Decimal = Field(default=Decimal(0), sa_column=Column(Numeric(40, 0), nullable=False))
    state: ReservationState = Field(sa_column=Column(EnumText(ReservationState, 16), nullable=False))
    spent: Decimal | None = Field(default=None, sa_column=Column(Numeric(40, 0), nullable=True))
    fees_paid: Decimal | None = Field(default=None, sa_column=Column(Numeric(40, 0), nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ChainTransaction(SQLModel, table=True):
    """A transaction that executed on the simulated chain."""

    __tablename__ = "chain_transactions"
    __table_args__ = (
        # At most one execution per idempotency key (the order id), ever.
        UniqueConstraint("idempotency_key", name="uq_chain_transactions_idempotency_key"),
        Index("ix_chain_transactions_order_id", "order_id"),
    )

    tx_hash: str = Field(primary_key=True, max_length=100)
    idempotency_key: str = Field(max_length=200)
    order_id: str | None = Field(default=None, max_length=30)
    dex: str = Field(max_length=16)
    token_in: str = Field(max_length=16)
    token_out: str = Field(max_length=16)
    legs: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    amount_in: Decimal = Field(sa_column=Column(AMOUNT, nullable=False))
    amount_out: Decimal = Field(sa_column=Column(AMOUNT, nullable=False))
    slot: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    # Fees, compute units, slots, sandwiched (contracts/landing.py LandingReport).
    landing: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))


class FailedTransaction(SQLModel, table=True):
    """A transaction that landed and failed on chain: it executed nothing and paid its fee.
    Keyed by signature, so a transaction is charged once however often it is confirmed."""

    __tablename__ = "failed_transactions"
    __table_args__ = (Index("ix_failed_transactions_order_id", "order_id"),)

    signature: str = Field(primary_key=True, max_length=100)
    idempotency_key: str = Field(max_length=200)
    order_id: str | None = Field(default=None, max_length=30)
    owner: str = Field(max_length=64)
    code: str = Field(max_length=64)
    reason: str
    fee_lamports: int = Field(sa_column=Column(BigInteger, nullable=False))
    slot: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class CongestionOverride(SQLModel, table=True):
    """An operator's fixed congestion level (POST /sim/congestion), one row (id 1)."""

    __tablename__ = "sim_congestion"

    id: int = Field(default=1, primary_key=True)
    level: float
    from_slot: int = Field(sa_column=Column(BigInteger, nullable=False))
    until_slot: int = Field(sa_column=Column(BigInteger, nullable=False))
    set_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Quote(SQLModel, table=True):
    """A firm quote: what POST /quotes answered, valid for a while, usable once."""

    __tablename__ = "quotes"
    __table_args__ = (
        Index("ix_quotes_owner", "owner"),
        # What the purge of expired quotes reads (orders/quotes.py).
        Index("ix_quotes_unused_expires_at", "expires_at", postgresql_where=text("used_by IS NULL")),
    )

    id: str = Field(primary_key=True, max_length=30)
    owner: str = Field(max_length=64)
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))  # the order fields quoted
    answer: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))  # the response body
    route: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))  # RouteDecision
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_by: str | None = Field(default=None, max_length=30)  # the order placed from it
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ApiKey(SQLModel, table=True):
    """An API key: only its HMAC is kept (core/api_keys.py)."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=16)  # the key's public part, `oe_…`
    key_hash: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=64)  # also the owner of the orders placed with it
    operator: bool = False
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Strategy(SQLModel, table=True):
    """A TWAP, DCA or bracket: its parameters and counters; its orders are the orders
    whose parent_id is its id (progress is summed from them)."""

    __tablename__ = "strategies"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_strategies_owner_idempotency_key"),
        Index("ix_strategies_owner_id", "owner", "id"),
        Index(
            "ix_strategies_running_owner", "owner", postgresql_where=text("status IN ('RUNNING', 'PAUSED')")
        ),
    )

    id: str = Field(primary_key=True, max_length=30)
    owner: str = Field(max_length=64)
    type: StrategyType = Field(sa_column=Column(EnumText(StrategyType, 16), nullable=False))
    status: StrategyStatus = Field(sa_column=Column(EnumText(StrategyStatus, 16), nullable=False))
    params: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    orders_skipped: int = 0  # TWAP slices skipped for their price
    orders_unfunded: int = 0  # orders it could not place (insufficient funds, …)
    last_seq: int = 0
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # A retried POST /strategies with the same key (and body) finds this strategy.
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class StrategyEvent(SQLModel, table=True):
    """A strategy's append-only event log: `/strategies/{id}/events`, `/ws/strategies`."""

    __tablename__ = "strategy_events"
    __table_args__ = (
        UniqueConstraint("strategy_id", "seq", name="uq_strategy_events_strategy_seq"),
        UniqueConstraint("strategy_id", "event_key", name="uq_strategy_events_strategy_event_key"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    strategy_id: str = Field(foreign_key="strategies.id", max_length=30)
    seq: int
    status: StrategyStatus = Field(sa_column=Column(EnumText(StrategyStatus, 16), nullable=False))
    event_key: str = Field(max_length=200)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class SentTransaction(SQLModel, table=True):
    """A signed transaction of an order on a real cluster, recorded before it is first
    sent: what a retried or recovered step asks the chain about before it may send
    another (onchain/chain.py). Never deleted: the order's history of what it sent."""

    __tablename__ = "sent_transactions"
    __table_args__ = (Index("ix_sent_transactions_order_id", "order_id", "created_at"),)

    signature: str = Field(primary_key=True, max_length=100)
    order_id: str = Field(max_length=30)
    raw: str = Field(sa_column=Column(Text, nullable=False))  # base64 of the signed wire bytes
    last_valid_block_height: int = Field(sa_column=Column(BigInteger, nullable=False))
    sent_slot: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
