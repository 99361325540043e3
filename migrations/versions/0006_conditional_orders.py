"""Stop-loss, take-profit and trailing-stop orders: their trigger price, a trailing stop's
distance and the best price it has seen.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(40, 18)


def upgrade() -> None:
    op.add_column("orders", sa.Column("trigger_price", AMOUNT))
    op.add_column("orders", sa.Column("trailing_bps", sa.Integer))
    op.add_column("orders", sa.Column("peak_price", AMOUNT))


def downgrade() -> None:
    for column in ("peak_price", "trailing_bps", "trigger_price"):
        op.drop_column("orders", column)
