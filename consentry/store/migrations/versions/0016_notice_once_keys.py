"""cases: a notice sent at most once per occasion (case, kind, recipient, receipt): the
key is claimed before the message leaves, so a retried or concurrent job cannot send it
twice

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("once_key", sa.String(length=100), nullable=True))
        batch.create_index("ux_notifications_once_key", ["once_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ux_notifications_once_key")
        batch.drop_column("once_key")
