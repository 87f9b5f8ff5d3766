"""Stage 2 (semi-automatic): the detector versions trained on the accepted masks, the
images each detector version has pre-filled, and the state of a pre-filled mask
(proposed, confirmed, edited, rejected).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detector_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"),
                  nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("weights", sa.Text, nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("metrics_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_detector_versions_model_version_id", "detector_versions",
                    ["model_version_id"])
    op.create_table(
        "prefilled_images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False),
        sa.Column("detector_version_id", sa.Integer, sa.ForeignKey("detector_versions.id"),
                  nullable=False),
        sa.Column("detections", sa.Integer, nullable=False),
        sa.Column("proposed", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("image_id", "detector_version_id"),
    )
    with op.batch_alter_table("masks") as batch:
        batch.add_column(sa.Column("prefill_state", sa.String(20), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("masks") as batch:
        batch.drop_column("prefill_state")
    op.drop_table("prefilled_images")
    op.drop_index("ix_detector_versions_model_version_id", "detector_versions")
    op.drop_table("detector_versions")
