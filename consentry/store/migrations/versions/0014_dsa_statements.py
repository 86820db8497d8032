"""reporting: DSA statements of reasons (Art. 17, 24(5)), kept as sent to the EU
Transparency Database and queued for submission

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 16:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dsa_statements",
        sa.Column("puid", sa.String(length=500), nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("database_id", sa.String(length=80), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("puid"),
        sa.UniqueConstraint("subject_kind", "subject", name="uq_dsa_statements_subject"),
    )
    op.create_index("ix_dsa_statements_status", "dsa_statements", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_dsa_statements_status", table_name="dsa_statements")
    op.drop_table("dsa_statements")
