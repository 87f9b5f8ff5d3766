"""Model-in-the-loop rounds: when a model version was promoted to serve, and why not.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ADD COLUMN with constraints otherwise.
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("note", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("note")
        batch.drop_column("promoted_at")
