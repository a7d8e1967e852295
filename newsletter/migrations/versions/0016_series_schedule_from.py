"""series.schedule_from: when a series' current schedule starts

`series edit` can change a series' schedule (its rule or time zone). Sends of the new rule
at or before this moment (the change, or the last period already recorded, whichever is
later) are never built: a schedule change neither rebuilds nor duplicates a period.
NULL: the schedule is the one the series was created with.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series") as batch_op:
        batch_op.add_column(sa.Column("schedule_from", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("series") as batch_op:
        batch_op.drop_column("schedule_from")
