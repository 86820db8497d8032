"""evidence: personal data in ordinary tables sealed field by field (an address to notify,
an appellant's contact, a refused prompt), so columns that held an address widen; one-off
maintenance (sealing what older versions wrote in the clear) is recorded when done

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 16:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("recipient", type_=sa.Text(), existing_type=sa.String(320),
                           existing_nullable=False)
    with op.batch_alter_table("appeals") as batch:
        batch.alter_column("contact", type_=sa.Text(), existing_type=sa.String(320),
                           existing_nullable=True)
    op.create_table(
        "maintenance_runs",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("done_at", TIME, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("maintenance_runs")
    with op.batch_alter_table("appeals") as batch:
        batch.alter_column("contact", type_=sa.String(320), existing_type=sa.Text(),
                           existing_nullable=True)
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("recipient", type_=sa.String(320), existing_type=sa.Text(),
                           existing_nullable=False)
