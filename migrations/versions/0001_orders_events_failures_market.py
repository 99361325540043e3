"""Orders, their event log and failures; the simulated market's pools, wallet and chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(40, 18)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(30), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token_in", sa.String(16), nullable=False),
        sa.Column("token_out", sa.String(16), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("slippage_bps", sa.Integer, nullable=False),
        sa.Column("limit_price", AMOUNT),
        sa.Column("expires_at", TS),
        sa.Column("quotes", JSONB),
        sa.Column("route", JSONB),
        sa.Column("selected_dex", sa.String(16)),
        sa.Column("min_amount_out", AMOUNT),
        sa.Column("amount_out", AMOUNT),
        sa.Column("executed_price", AMOUNT),
        sa.Column("tx_hash", sa.String(100)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failure_reason", sa.Text),
        sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("accepted_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_orders_owner_idempotency_key"),
    )
    op.create_index("ix_orders_owner_id", "orders", ["owner", "id"])
    op.create_index("ix_orders_status", "orders", ["status"])

    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(30), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("order_id", "seq", name="uq_order_events_order_seq"),
        sa.UniqueConstraint("order_id", "event_key", name="uq_order_events_order_event_key"),
    )

    op.create_table(
        "order_failures",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(30), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("failure_key", sa.String(200), nullable=False),
        sa.Column("activity", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("retryable", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("order_id", "failure_key", name="uq_order_failures_order_key"),
    )
    op.create_index("ix_order_failures_order_id", "order_failures", ["order_id"])

    op.create_table(
        "market_pools",
        sa.Column("pool_id", sa.String(64), primary_key=True),
        sa.Column("dex", sa.String(16), nullable=False),
        sa.Column("pair", sa.String(32), nullable=False),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "wallet_balances",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("amount", sa.Numeric(40, 0), nullable=False),
    )
    op.create_table(
        "chain_transactions",
        sa.Column("tx_hash", sa.String(100), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(30)),
        sa.Column("dex", sa.String(16), nullable=False),
        sa.Column("token_in", sa.String(16), nullable=False),
        sa.Column("token_out", sa.String(16), nullable=False),
        sa.Column("legs", JSONB, nullable=False),
        sa.Column("amount_in", AMOUNT, nullable=False),
        sa.Column("amount_out", AMOUNT, nullable=False),
        sa.Column("slot", sa.BigInteger, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_chain_transactions_idempotency_key"),
    )
    op.create_index("ix_chain_transactions_order_id", "chain_transactions", ["order_id"])


def downgrade() -> None:
    op.drop_table("chain_transactions")
    op.drop_table("wallet_balances")
    op.drop_table("market_pools")
    op.drop_table("order_failures")
    op.drop_table("order_events")
    op.drop_table("orders")
