"""Quotes, exact-out and multi-hop orders: each order's swap mode, bound, hops and venues,
the quote it came from (with the quoted route), and the quotes themselves.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(40, 18)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("orders", sa.Column("swap_mode", sa.String(16), nullable=False, server_default="exact_in"))
    op.add_column("orders", sa.Column("max_amount_in", AMOUNT))
    op.add_column("orders", sa.Column("amount_in_filled", AMOUNT))
    # Orders of earlier versions traded their direct pair only.
    op.add_column("orders", sa.Column("max_hops", sa.SmallInteger, nullable=False, server_default="1"))
    op.add_column("orders", sa.Column("dexes", JSONB))
    op.add_column("orders", sa.Column("quote", JSONB))
    op.create_table(
        "quotes",
        sa.Column("id", sa.String(30), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("answer", JSONB, nullable=False),
        sa.Column("route", JSONB, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_by", sa.String(30)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_quotes_owner", "quotes", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_quotes_owner", "quotes")
    op.drop_table("quotes")
    for column in ("quote", "dexes", "max_hops", "amount_in_filled", "max_amount_in", "swap_mode"):
        op.drop_column("orders", column)
