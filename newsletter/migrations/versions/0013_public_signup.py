"""public sign-up: lists that the public form offers, and the sign-up throttle

`lists.public` marks the lists the public sign-up form (/signup) offers; every existing
list stays private. `signup_attempts` keeps one row per sign-up request for the rate
limits (per client and per address): keyed hashes, never the address or the IP itself.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch:
        batch.add_column(sa.Column("public", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("mailed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_signup_attempts_client_at", "signup_attempts", ["client_hash", "at"])
    op.create_index("ix_signup_attempts_address_at", "signup_attempts",
                    ["address_hash", "at"])


def downgrade() -> None:
    op.drop_index("ix_signup_attempts_address_at", "signup_attempts")
    op.drop_index("ix_signup_attempts_client_at", "signup_attempts")
    op.drop_table("signup_attempts")
    with op.batch_alter_table("lists") as batch:
        batch.drop_column("public")
