"""subscriber events: every change to a person's status or lists, with when, why and who

The newsroom shows one person's history (issue 10). Until now a status change left only
`updated_at` behind: when someone unsubscribed, by which link, or which delivery's
reply marked them bounced was lost.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(),
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE",
                                name="fk_subscriber_events_subscriber_id_subscribers"),
                  nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("by", sa.String(length=200), server_default="", nullable=False),
    )
    op.create_index("ix_subscriber_events_subscriber_id_at", "subscriber_events",
                    ["subscriber_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_subscriber_events_subscriber_id_at", table_name="subscriber_events")
    op.drop_table("subscriber_events")
