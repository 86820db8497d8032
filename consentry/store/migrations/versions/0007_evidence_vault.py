"""evidence: the sealed vault, legal holds, and the key canaries

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 14:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evidence_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_kind", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("clause", sa.String(length=10), nullable=True),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("retain_until", TIME, nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_metadata", sa.LargeBinary(), nullable=True),
        sa.Column("content_dropped_at", TIME, nullable=True),
        sa.Column("purged_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evidence_subject", "evidence_items", ["subject_kind", "subject"])
    op.create_index("ix_evidence_account", "evidence_items", ["account_id"])
    op.create_index("ix_evidence_retain", "evidence_items", ["purged_at", "retain_until"])
    op.create_table(
        "evidence_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=200), nullable=False),
        sa.Column("placed_at", TIME, nullable=False),
        sa.Column("lifted_at", TIME, nullable=True),
        sa.Column("lifted_by", sa.String(length=200), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["evidence_items.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "evidence_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("canary", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )


def downgrade() -> None:
    op.drop_table("evidence_keys")
    op.drop_table("evidence_holds")
    op.drop_index("ix_evidence_retain", table_name="evidence_items")
    op.drop_index("ix_evidence_account", table_name="evidence_items")
    op.drop_index("ix_evidence_subject", table_name="evidence_items")
    op.drop_table("evidence_items")
