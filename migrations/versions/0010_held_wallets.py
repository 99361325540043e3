"""Owners' own keypairs held for the real chain: a wallet says whose keypair it is
(`custody`), and a held one stores its keypair only sealed (a Fernet token under
ORDER_ENGINE_WALLET_KEY), never a seed. Existing wallets are the simulation's.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wallets", sa.Column("custody", sa.String(16), nullable=False, server_default="SIMULATED"))
    op.add_column("wallets", sa.Column("sealed_keypair", sa.Text()))
    # A held wallet never has a plain seed next to its sealed keypair, and a simulated one
    # is never mistaken for a held one.
    op.create_check_constraint(
        "ck_wallets_custody_keys",
        "wallets",
        "(custody = 'SIMULATED' AND sealed_keypair IS NULL AND seed <> '')"
        " OR (custody = 'HELD' AND sealed_keypair IS NOT NULL AND seed = '')",
    )


def downgrade() -> None:
    # A held wallet has no seed to fall back on: dropping its sealed keypair would lose
    # the owner's keypair (and strand its funds) for good, so refuse instead.
    held = op.get_bind().scalar(sa.text("SELECT count(*) FROM wallets WHERE custody = 'HELD'"))
    if held:
        raise RuntimeError(
            f"{held} wallets hold owners' own keypairs; export or delete them before downgrading"
        )
    op.drop_constraint("ck_wallets_custody_keys", "wallets", type_="check")
    op.drop_column("wallets", "sealed_keypair")
    op.drop_column("wallets", "custody")
