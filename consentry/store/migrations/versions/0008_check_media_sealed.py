"""check media sealed in the evidence vault: a reference to the sealed item; the bytes
column may be empty (rows written before are sealed and emptied at start, where the keys
are: ``Vault.seal_plaintext_media``)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("check_media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_id", sa.String(length=40), nullable=True))
        batch_op.alter_column("content", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.create_foreign_key("fk_check_media_evidence", "evidence_items",
                                    ["evidence_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("check_media", schema=None) as batch_op:
        batch_op.drop_constraint("fk_check_media_evidence", type_="foreignkey")
        batch_op.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("evidence_id")
