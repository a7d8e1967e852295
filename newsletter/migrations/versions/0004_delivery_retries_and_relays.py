"""delivery retries and relays

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("first_attempt_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("smtp_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("relay", sa.String(length=200), nullable=True))

    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_note", sa.String(length=500), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("status_note")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("relay")
        batch_op.drop_column("smtp_code")
        batch_op.drop_column("enqueued_at")
        batch_op.drop_column("first_attempt_at")
        batch_op.drop_column("next_attempt_at")
