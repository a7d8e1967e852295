"""drop two indexes that every write paid for and no query used

- `ix_subscribers_country`: the index on (country, language, status) starts with
  country, so it serves every lookup by country; the single-column copy only cost each
  new subscriber one more index entry (about a tenth of a PostgreSQL import's time).
- `ix_deliveries_message_id`: nothing looks a delivery up by its Message-ID (a report
  is matched by its signed VERP address, never by a quoted Message-ID, which anyone can
  forge); every planned delivery (a NULL entry) and every recorded reply paid for it.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_subscribers_country", table_name="subscribers")
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
    op.create_index("ix_subscribers_country", "subscribers", ["country"])
