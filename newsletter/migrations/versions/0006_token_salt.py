"""token salt

A per-subscriber random value signed into every personal link, so that a link mailed
to someone whose id is later reused does not act on the new holder of the id.

Rows that exist at the upgrade get the empty salt: their links, already mailed, were
signed without one and keep working. Every row added afterwards gets a random salt
(the application sets it; there is deliberately no server default).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_salt", sa.String(32), nullable=False, server_default="")
        )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("token_salt", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("token_salt")
