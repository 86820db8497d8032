"""reporting: the register of regulator requests (OSA s.100, DSA Art. 67 ...) and the
packs and reports attached to each

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "regulator_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("regulator", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("legal_basis", sa.String(length=200), nullable=False),
        sa.Column("questions", sa.Text(), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("deadline", TIME, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_regulator_requests_status", "regulator_requests",
                    ["status", "deadline"])
    op.create_table(
        "regulator_attachments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("period_from", TIME, nullable=True),
        sa.Column("period_to", TIME, nullable=True),
        sa.Column("attached_at", TIME, nullable=False),
        sa.Column("attached_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["regulator_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_regulator_attachments_request", "regulator_attachments",
                    ["request_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_regulator_attachments_request", table_name="regulator_attachments")
    op.drop_table("regulator_attachments")
    op.drop_index("ix_regulator_requests_status", table_name="regulator_requests")
    op.drop_table("regulator_requests")
