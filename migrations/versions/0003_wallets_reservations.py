"""Every owner its own wallet: keypairs, balances with reservations, and each order's
reservation. The single wallet of earlier versions becomes the local operator's
(owner "local"), with the keypair it always had.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNITS = sa.Numeric(40, 0)
TS = sa.DateTime(timezone=True)
# The earlier single wallet's keypair seed (market/transactions.py made it from this).
LEGACY_SEED = hashlib.sha256(b"order-engine simulated wallet").hexdigest()
LEGACY_OWNER = "local"


def upgrade() -> None:
    from solders.keypair import Keypair

    op.create_table(
        "wallets",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(64), nullable=False, unique=True),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    bind = op.get_bind()
    legacy = bind.execute(sa.text("SELECT token, amount FROM wallet_balances")).all()
    op.drop_table("wallet_balances")
    op.create_table(
        "wallet_balances",
        sa.Column("owner", sa.String(64), sa.ForeignKey("wallets.owner"), primary_key=True),
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("total", UNITS, nullable=False),
        sa.Column("reserved", UNITS, nullable=False, server_default="0"),
        # No base unit is ever promised twice: what is reserved is always there.
        sa.CheckConstraint("reserved >= 0 AND total >= reserved", name="ck_wallet_balances_covered"),
    )
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.String(30), sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("token", sa.String(16), nullable=False),
        sa.Column("amount", UNITS, nullable=False),
        sa.Column("fee_lamports", UNITS, nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spent", UNITS),
        sa.Column("fees_paid", UNITS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS),
    )
    op.create_index("ix_reservations_owner_state", "reservations", ["owner", "state"])
    # Counting an owner's open orders (the per-owner cap) reads only the open ones.
    op.create_index(
        "ix_orders_open_owner",
        "orders",
        ["owner"],
        postgresql_where=sa.text("status NOT IN ('CONFIRMED', 'FAILED', 'CANCELLED', 'EXPIRED')"),
    )

    if legacy:
        address = str(Keypair.from_seed(bytes.fromhex(LEGACY_SEED)).pubkey())
        bind.execute(
            sa.text("INSERT INTO wallets (owner, address, seed) VALUES (:owner, :address, :seed)"),
            {"owner": LEGACY_OWNER, "address": address, "seed": LEGACY_SEED},
        )
        bind.execute(
            sa.text(
                "INSERT INTO wallet_balances (owner, token, total, reserved) VALUES (:owner, :token, :total, 0)"
            ),
            [{"owner": LEGACY_OWNER, "token": token, "total": amount} for token, amount in legacy],
        )


def downgrade() -> None:
    op.drop_index("ix_orders_open_owner", "orders")
    bind = op.get_bind()
    kept = bind.execute(
        sa.text("SELECT token, total FROM wallet_balances WHERE owner = :owner"), {"owner": LEGACY_OWNER}
    ).all()
    op.drop_table("reservations")
    op.drop_table("wallet_balances")
    op.drop_table("wallets")
    op.create_table(
        "wallet_balances",
        sa.Column("token", sa.String(16), primary_key=True),
        sa.Column("amount", UNITS, nullable=False),
    )
    if kept:
        bind.execute(
            sa.text("INSERT INTO wallet_balances (token, amount) VALUES (:token, :amount)"),
            [{"token": token, "amount": total} for token, total in kept],
        )
