"""The unused quotes by expiry: what the periodic purge of expired quotes reads, without
scanning the quotes kept with their orders.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_quotes_unused_expires_at", "quotes", ["expires_at"], postgresql_where=sa.text("used_by IS NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_quotes_unused_expires_at", "quotes")
