"""A strategy's Idempotency-Key, per owner, and the hash of the request that used it: a
retried POST /strategies finds the strategy the first request started.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing strategies had no key, and a NULL is never a duplicate.
    op.add_column("strategies", sa.Column("idempotency_key", sa.String(255)))
    op.add_column("strategies", sa.Column("request_hash", sa.String(64)))
    op.create_unique_constraint(
        "uq_strategies_owner_idempotency_key", "strategies", ["owner", "idempotency_key"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_strategies_owner_idempotency_key", "strategies", type_="unique")
    op.drop_column("strategies", "request_hash")
    op.drop_column("strategies", "idempotency_key")
