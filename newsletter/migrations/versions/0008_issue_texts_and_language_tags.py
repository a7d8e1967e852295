"""per-language issue titles and introductions; subscriber language holds any BCP 47 tag

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("titles", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("intros", sa.JSON(), nullable=True))
    # zh-Hant-TW is 10 characters; RFC 5646 asks implementations to hold 35
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("language", existing_type=sa.String(length=8),
                              type_=sa.String(length=35), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("language", existing_type=sa.String(length=35),
                              type_=sa.String(length=8), existing_nullable=False)
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("intros")
        batch_op.drop_column("titles")
