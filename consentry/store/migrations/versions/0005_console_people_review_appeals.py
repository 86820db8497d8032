"""console: people and sessions, review items and their events, appeals; notifications
and platform callbacks may be about a review item instead of a takedown case; CS-1
suspensions pending a reviewer's confirmation; the content id of a checked upload/output

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("suspensions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_review", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_id", sa.String(length=200), nullable=True))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("totp_secret", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("password_changed_at", TIME, nullable=False),
        sa.Column("disabled_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(length=30), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("clause", sa.String(length=10), nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("has_media", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claimed_until", TIME, nullable=True),
        sa.Column("excluded_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("closed_at", TIME, nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["claimed_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["excluded_user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "subject", name="uq_review_items_subject"),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index("ix_review_items_account", ["account_id"], unique=False)
        batch_op.create_index("ix_review_items_claims", ["status", "claimed_until"],
                              unique=False)
        batch_op.create_index("ix_review_items_queue", ["queue", "status", "priority",
                                                        "due_at"], unique=False)
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("last_seen_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("verified_at", TIME, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_user_sessions_user", ["user_id"], unique=False)
    op.create_table(
        "appeals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=320), nullable=True),
        sa.Column("filed_at", TIME, nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["review_item_id"], ["review_items.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_kind", "subject", name="uq_appeals_subject"),
    )
    op.create_table(
        "review_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["review_items.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_events", schema=None) as batch_op:
        batch_op.create_index("ix_review_events_actor", ["actor_id", "kind", "at"],
                              unique=False)
        batch_op.create_index("ix_review_events_item", ["item_id", "id"], unique=False)
    for table in ("notifications", "removal_jobs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("review_item_id", sa.Integer(), nullable=True))
            batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=True)
            batch_op.create_foreign_key(f"fk_{table}_review_item", "review_items",
                                        ["review_item_id"], ["id"])


def downgrade() -> None:
    for table in ("removal_jobs", "notifications"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_review_item", type_="foreignkey")
            batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
            batch_op.drop_column("review_item_id")
    op.drop_table("review_events")
    op.drop_table("appeals")
    op.drop_table("user_sessions")
    op.drop_table("review_items")
    op.drop_table("users")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("content_id")
    with op.batch_alter_table("suspensions", schema=None) as batch_op:
        batch_op.drop_column("pending_review")
