"""Where a proposed mask came from: its stability score and a JSON record of the machine
that proposed it (generator settings for automatic masks, detector version and score for
pre-filled ones).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("masks") as batch:
        batch.add_column(sa.Column("stability_score", sa.Float, nullable=True))
        batch.add_column(sa.Column("meta_json", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("masks") as batch:
        batch.drop_column("meta_json")
        batch.drop_column("stability_score")
