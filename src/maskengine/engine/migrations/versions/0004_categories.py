"""Optional mask classes: a categories table and each mask's category.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # batch mode: SQLite cannot ALTER TABLE ADD COLUMN with constraints otherwise.
    with op.batch_alter_table("masks") as batch:
        batch.add_column(sa.Column("category_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_masks_category_id", "categories", ["category_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("masks") as batch:
        batch.drop_constraint("fk_masks_category_id", type_="foreignkey")
        batch.drop_column("category_id")
    op.drop_table("categories")
