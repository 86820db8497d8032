"""gate: conversation threads (recent requests, photo digests and faces, verdicts per
thread, until they expire)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "thread_turns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.String(length=200), nullable=False),
        sa.Column("check_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("image_sha256", sa.JSON(), nullable=False),
        sa.Column("faces", sa.JSON(), nullable=False),
        sa.Column("nsfw", sa.Double(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("clause", sa.String(length=10), nullable=False),
        sa.Column("evasion_of", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["check_id"], ["checks.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("thread_turns", schema=None) as batch_op:
        batch_op.create_index("ix_thread_turns_thread", ["thread_id", "created_at"],
                              unique=False)
        batch_op.create_index("ix_thread_turns_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("thread_turns", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_turns_expires")
        batch_op.drop_index("ix_thread_turns_thread")
    op.drop_table("thread_turns")
