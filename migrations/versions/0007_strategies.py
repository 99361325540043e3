"""Strategies (TWAP, DCA, brackets), their event log, and each order's parent strategy.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "strategies",
        sa.Column("id", sa.String(30), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("orders_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("orders_unfunded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_strategies_owner_id", "strategies", ["owner", "id"])
    op.create_index(
        "ix_strategies_running_owner",
        "strategies",
        ["owner"],
        postgresql_where=sa.text("status IN ('RUNNING', 'PAUSED')"),
    )
    op.create_table(
        "strategy_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("strategy_id", sa.String(30), sa.ForeignKey("strategies.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("strategy_id", "seq", name="uq_strategy_events_strategy_seq"),
        sa.UniqueConstraint("strategy_id", "event_key", name="uq_strategy_events_strategy_event_key"),
    )
    op.add_column("orders", sa.Column("parent_id", sa.String(30)))
    op.create_index(
        "ix_orders_parent_id", "orders", ["parent_id"], postgresql_where=sa.text("parent_id IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_orders_parent_id", "orders")
    op.drop_column("orders", "parent_id")
    op.drop_table("strategy_events")
    op.drop_table("strategies")
