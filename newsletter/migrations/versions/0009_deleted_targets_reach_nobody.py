"""deleted targets reach nobody

An issue with no targets goes to every active subscriber. Until now, deleting a list or a
segment deleted the issue's target row with it (ON DELETE CASCADE), so a draft, or a
re-send of a sent issue to people added since, would have gone to everyone. Now the
target row stays with its list or segment set to NULL, which `audience_of` reads as "a
target that was deleted": it reaches nobody.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TARGETS = (("list_id", "lists"), ("segment_id", "segments"))


def _foreign_keys(ondelete: str) -> None:
    with op.batch_alter_table("issue_targets", schema=None) as batch_op:
        for column, table in _TARGETS:
            name = f"fk_issue_targets_{column}_{table}"
            batch_op.drop_constraint(name, type_="foreignkey")
            batch_op.create_foreign_key(name, table, [column], ["id"], ondelete=ondelete)


def upgrade() -> None:
    _foreign_keys("SET NULL")


def downgrade() -> None:
    op.execute("DELETE FROM issue_targets WHERE list_id IS NULL AND segment_id IS NULL")
    _foreign_keys("CASCADE")
