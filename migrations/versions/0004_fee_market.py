"""The fee market: what each order asked of landing and what it cost, the stage and fee
of every failed attempt, transactions that landed and failed (they paid), and the
operator's congestion override.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The order's landing request (priority fee, tip, simulate) and its landing report.
    op.add_column("orders", sa.Column("landing", JSONB))
    op.add_column("orders", sa.Column("execution", JSONB))
    op.add_column("order_failures", sa.Column("stage", sa.String(16)))
    op.add_column(
        "order_failures", sa.Column("fee_lamports", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column("chain_transactions", sa.Column("landing", JSONB))
    op.create_table(
        "failed_transactions",
        sa.Column("signature", sa.String(100), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(30)),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("fee_lamports", sa.BigInteger, nullable=False),
        sa.Column("slot", sa.BigInteger, nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_failed_transactions_order_id", "failed_transactions", ["order_id"])
    op.create_table(
        "sim_congestion",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("from_slot", sa.BigInteger, nullable=False),
        sa.Column("until_slot", sa.BigInteger, nullable=False),
        sa.Column("set_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sim_congestion")
    op.drop_index("ix_failed_transactions_order_id", "failed_transactions")
    op.drop_table("failed_transactions")
    op.drop_column("chain_transactions", "landing")
    op.drop_column("order_failures", "fee_lamports")
    op.drop_column("order_failures", "stage")
    op.drop_column("orders", "execution")
    op.drop_column("orders", "landing")
