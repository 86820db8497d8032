"""likeness: the registry of protected faces (enrolments, sealed embeddings, their event
log and refused attempts)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "likeness_enrolments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("live_account", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("no_edits", sa.Boolean(), nullable=False),
        sa.Column("photo_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("withdrawn_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_account"),
    )
    op.create_index("ix_likeness_enrolments_account_id", "likeness_enrolments",
                    ["account_id"])
    op.create_table(
        "likeness_faces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enrolment_id", sa.String(length=40), nullable=False),
        sa.Column("evidence_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["enrolment_id"], ["likeness_enrolments.id"]),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence_items.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_likeness_faces_enrolment_id", "likeness_faces", ["enrolment_id"])
    op.create_table(
        "likeness_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enrolment_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_likeness_events_enrolment_id", "likeness_events", ["enrolment_id"])
    op.create_table(
        "likeness_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enrolment_id", sa.String(length=40), nullable=False),
        sa.Column("check_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_likeness_attempts_enrolment", "likeness_attempts",
                    ["enrolment_id", "at"])


def downgrade() -> None:
    op.drop_table("likeness_attempts")
    op.drop_table("likeness_events")
    op.drop_table("likeness_faces")
    op.drop_table("likeness_enrolments")
