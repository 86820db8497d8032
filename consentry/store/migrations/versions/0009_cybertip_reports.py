"""reporting: CyberTipline reports drafted from sealed evidence, and their items

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 14:25:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cybertip_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("confirmed_by", sa.String(length=200), nullable=True),
        sa.Column("confirmed_at", TIME, nullable=True),
        sa.Column("classification", sa.String(length=4), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("ncmec_report_id", sa.String(length=40), nullable=True),
        sa.Column("progress", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_cybertip_status", "cybertip_reports", ["status", "id"])
    op.create_table(
        "cybertip_report_items",
        sa.Column("evidence_id", sa.String(length=40), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence_items.id"]),
        sa.ForeignKeyConstraint(["report_id"], ["cybertip_reports.id"]),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    op.create_index("ix_cybertip_report_items_report_id", "cybertip_report_items",
                    ["report_id"])


def downgrade() -> None:
    op.drop_index("ix_cybertip_report_items_report_id", table_name="cybertip_report_items")
    op.drop_table("cybertip_report_items")
    op.drop_index("ix_cybertip_status", table_name="cybertip_reports")
    op.drop_table("cybertip_reports")
