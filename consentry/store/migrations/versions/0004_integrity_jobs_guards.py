"""integrity: request digests for idempotency, case jobs, case-held bank entries and
items, attempt guards and rate windows in the database (replacing per-case PIN counters)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))

    with op.batch_alter_table("takedown_cases", schema=None) as batch_op:
        batch_op.drop_column("failed_pins")
        batch_op.drop_column("locked_until")

    op.create_table(
        "case_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["takedown_cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_case_jobs_due", ["state", "claimed_until"], unique=False)

    op.create_table(
        "case_bank_entries",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("activated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["takedown_cases.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["bank_entries.id"]),
        sa.PrimaryKeyConstraint("case_id", "entry_id"),
    )

    op.create_table(
        "case_items",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["takedown_cases.id"]),
        sa.PrimaryKeyConstraint("case_id", "content_id"),
    )
    with op.batch_alter_table("case_items", schema=None) as batch_op:
        batch_op.create_index("ix_case_items_content", ["content_id"], unique=False)

    op.create_table(
        "attempt_guards",
        sa.Column("target", sa.String(length=40), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locks", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "client"),
    )

    op.create_table(
        "rate_windows",
        sa.Column("scope", sa.String(length=30), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "client", "window"),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_table("attempt_guards")
    with op.batch_alter_table("case_items", schema=None) as batch_op:
        batch_op.drop_index("ix_case_items_content")
    op.drop_table("case_items")
    op.drop_table("case_bank_entries")
    with op.batch_alter_table("case_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_case_jobs_due")
    op.drop_table("case_jobs")
    with op.batch_alter_table("takedown_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("failed_pins", sa.Integer(), nullable=False,
                                      server_default="0"))
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("request_sha256")
