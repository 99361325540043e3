"""Transactions sent to a real cluster, recorded before they are first sent: the chain
is asked about each of them before an order may send another (exactly once on a real
chain, docs/decisions/0012-exactly-once-on-a-real-chain.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sent_transactions",
        sa.Column("signature", sa.String(100), primary_key=True),
        sa.Column("order_id", sa.String(30), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("sent_slot", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sent_transactions_order_id", "sent_transactions", ["order_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sent_transactions_order_id", table_name="sent_transactions")
    op.drop_table("sent_transactions")
