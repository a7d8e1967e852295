"""the calendar: feeds, series and their periods, schedules, approval, scheduler leases

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("countries", sa.String(length=200), server_default="", nullable=False),
        sa.Column("interval_minutes", sa.Integer(), server_default="60", nullable=False),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("last_fetched_at", sa.DateTime(), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(), nullable=True),
        sa.Column("next_fetch_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(length=64), nullable=False, unique=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("every", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("lists", sa.JSON(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("feeds", sa.JSON(), nullable=False),
        sa.Column("focus", sa.String(length=8), server_default="first", nullable=False),
        sa.Column("titles", sa.JSON(), nullable=False),
        sa.Column("intros", sa.JSON(), nullable=False),
        sa.Column("approval", sa.String(length=8), server_default="none", nullable=False),
        sa.Column("min_items", sa.Integer(), server_default="1", nullable=False),
        sa.Column("window", sa.String(length=16), server_default="period", nullable=False),
        sa.Column("local_time", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("build_ahead_minutes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_items_feed_id_feeds", "feeds", ["feed_id"], ["id"],
                                    ondelete="SET NULL")
        batch_op.create_index("ix_items_feed_id", ["feed_id"], unique=False)
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("approval", sa.String(length=8), server_default="none", nullable=False))
        batch_op.add_column(
            sa.Column("review", sa.String(length=16), server_default="", nullable=False))
        batch_op.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("send_local_time", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("send_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("schedule_timezone", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key("fk_issues_series_id_series", "series", ["series_id"],
                                    ["id"], ondelete="SET NULL")
        batch_op.create_index("ix_issues_series_id", ["series_id"], unique=False)
        batch_op.create_index("ix_issues_send_at", ["send_at"], unique=False)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))
    op.create_table(
        "issue_reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("issue_id", sa.Integer(),
                  sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_issue_reviews_issue_id", "issue_reviews", ["issue_id"])
    op.create_table(
        "series_periods",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("series_id", sa.Integer(),
                  sa.ForeignKey("series.id", ondelete="CASCADE"), nullable=False),
        sa.Column("occurs_at", sa.DateTime(), nullable=False),
        sa.Column("window_from", sa.Date(), nullable=False),
        sa.Column("window_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), server_default="", nullable=False),
        sa.Column("issue_id", sa.Integer(),
                  sa.ForeignKey("issues.id", ondelete="SET NULL"), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("series_id", "occurs_at"),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("last_round_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_table("series_periods")
    op.drop_index("ix_issue_reviews_issue_id", table_name="issue_reviews")
    op.drop_table("issue_reviews")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("not_before")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index("ix_issues_send_at")
        batch_op.drop_index("ix_issues_series_id")
        batch_op.drop_constraint("fk_issues_series_id_series", type_="foreignkey")
        for column in ("schedule_timezone", "send_on", "send_local_time", "send_at", "review",
                       "approval", "number", "series_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_feed_id")
        batch_op.drop_constraint("fk_items_feed_id_feeds", type_="foreignkey")
        batch_op.drop_column("feed_id")
    op.drop_table("series")
    op.drop_table("feeds")
