"""Who changed a mask: the author of its latest change, and one row per change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a column with a foreign key in place.
    with op.batch_alter_table("masks") as batch:
        batch.add_column(sa.Column("updated_by_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_masks_updated_by_id_users", "users",
                                 ["updated_by_id"], ["id"])
    op.execute("UPDATE masks SET updated_by_id = author_id")  # the best known before now
    op.create_table(
        "mask_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mask_id", sa.Integer, sa.ForeignKey("masks.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("detail", sa.String(20), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mask_changes_mask_id", "mask_changes", ["mask_id"])


def downgrade() -> None:
    op.drop_table("mask_changes")
    with op.batch_alter_table("masks") as batch:
        batch.drop_constraint("fk_masks_updated_by_id_users", type_="foreignkey")
        batch.drop_column("updated_by_id")
