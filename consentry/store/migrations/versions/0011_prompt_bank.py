"""gate: the prompt bank (phrasings reviewers confirmed as abuse, with their encoder
vectors; refused in every language the encoder covers)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prompt_bank_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("clause", sa.String(length=10), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("encoder", sa.String(length=80), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source_check", sa.String(length=40), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_at", TIME, nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("change_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("prompt_bank_entries")
