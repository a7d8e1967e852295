"""mail reports: bounces, complaints and unsubscribe requests that came back by mail

Each report read by `newsletter bounces receive|import` is one row with its evidence
(the kind, the status code, what the server said, when) and what was decided; the raw
message is kept for NEWSLETTER_BOUNCE_KEEP_DAYS, then cleared. Deliveries get an index
on message_id, by which a complaint that quotes the original message finds it.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=300), server_default="", nullable=False),
        sa.Column("subscriber_id", sa.Integer(),
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE",
                                name="fk_mail_reports_subscriber_id_subscribers"),
                  nullable=True),
        sa.Column("delivery_id", sa.Integer(),
                  sa.ForeignKey("deliveries.id", ondelete="SET NULL",
                                name="fk_mail_reports_delivery_id_deliveries"),
                  nullable=True),
        sa.Column("issue_id", sa.Integer(),
                  sa.ForeignKey("issues.id", ondelete="SET NULL",
                                name="fk_mail_reports_issue_id_issues"),
                  nullable=True),
        sa.Column("status", sa.String(length=16), server_default="", nullable=False),
        sa.Column("diagnostic", sa.String(length=500), server_default="", nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
    )
    op.create_index("ux_mail_reports_digest", "mail_reports", ["digest"], unique=True)
    op.create_index("ix_mail_reports_subscriber_id_received_at", "mail_reports",
                    ["subscriber_id", "received_at"])
    op.create_index("ix_mail_reports_issue_id_kind", "mail_reports", ["issue_id", "kind"])
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
    op.drop_index("ix_mail_reports_issue_id_kind", table_name="mail_reports")
    op.drop_index("ix_mail_reports_subscriber_id_received_at", table_name="mail_reports")
    op.drop_index("ux_mail_reports_digest", table_name="mail_reports")
    op.drop_table("mail_reports")
