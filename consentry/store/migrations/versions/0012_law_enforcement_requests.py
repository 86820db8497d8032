"""reporting: law-enforcement preservation and disclosure requests

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "law_enforcement_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("deadline", TIME, nullable=True),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("hold_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=True),
        sa.Column("disclosed_at", TIME, nullable=True),
        sa.Column("disclosed_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["hold_id"], ["evidence_holds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("law_enforcement_requests")
