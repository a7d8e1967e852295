"""deleted items stay deleted

`items delete` removed the row, and the next import of the same file, or the next fetch
of the same feed (every hour, with the scheduler), brought the item back. The source
keys of deleted items are now kept, and imports skip them.

Revision ID: 0011
Revises: 0010
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
        "deleted_items",
        sa.Column("source_key", sa.String(length=64), primary_key=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deleted_items")
