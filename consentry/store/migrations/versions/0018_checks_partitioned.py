"""checks: idempotency keys in a table of their own (check_keys); on PostgreSQL, checks
partitioned by its id, which carries the time and whether the check is kept
(consentry.store.partitions)

The existing table becomes the partition of the ids given before (checks_legacy) without
copying a row: its indexes and its foreign key are adopted by the new parent. What costs
time is one scan of it to prove its ids fall in its range, and copying its idempotency
keys to check_keys (docs/operations.md, "Upgrading").

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-28 12:00:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from consentry.store.partitions import DEFAULT, LEGACY, LEGACY_END, create_missing

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
# The tables that refer to checks.id, with their foreign keys' names on PostgreSQL.
REFERRERS = (("check_media", "check_media_check_id_fkey"),
             ("strikes", "strikes_check_id_fkey"),
             ("suspensions", "suspensions_check_id_fkey"),
             ("thread_turns", "thread_turns_check_id_fkey"))
INDEXES = (("ix_checks_account_created", "account_id, created_at"),
           ("ix_checks_decision_created", "decision, created_at"))
# The ranges assume ids sort as bytes do: true of C, C.UTF-8 and the usual locales for
# these ids (lowercase hex after 'chk_'), not of a collation that sorts digits as numbers.
SORTS_AS_BYTES = ("SELECT 'chk_0f' < 'chk_a0' AND 'chk_ff' < 'chk_k' AND 'chk_k' < 'chk_x' "
                  "AND 'chk_x0199' < 'chk_x019a' AND 'chk_x09' < 'chk_x0a' "
                  "AND 'chk_x1' < 'chk_x10' AND 'chk_x9' < 'chk_xa'")


def upgrade() -> None:
    op.create_table(
        "check_keys",
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("check_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "idempotency_key"),
    )
    op.create_index("ix_check_keys_created", "check_keys", ["created_at"])
    op.execute("INSERT INTO check_keys (account_id, idempotency_key, check_id, created_at) "
               "SELECT account_id, idempotency_key, id, created_at FROM checks "
               "WHERE account_id IS NOT NULL AND idempotency_key IS NOT NULL")
    if op.get_bind().dialect.name != "postgresql":
        # SQLite rebuilds the table to drop a constraint (with foreign keys off: migrate).
        with op.batch_alter_table("checks") as batch:
            batch.drop_constraint("uq_checks_idempotency", type_="unique")
        return
    _partition()


def _partition() -> None:
    conn = op.get_bind()
    for table, fk in REFERRERS:
        op.drop_constraint(fk, table, type_="foreignkey")
    op.execute(f"ALTER TABLE checks RENAME TO {LEGACY}")
    op.execute(f"ALTER INDEX checks_pkey RENAME TO {LEGACY}_pkey")
    for name, _ in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name.replace('checks', LEGACY)}")
    op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT uq_checks_idempotency")
    if not conn.execute(sa.text(SORTS_AS_BYTES)).scalar_one():
        # Rebuilds the primary key's index: slow on a large table, but the ranges are exact.
        op.execute(f'ALTER TABLE {LEGACY} ALTER COLUMN id TYPE varchar(40) COLLATE "C"')
    op.execute(f"CREATE TABLE checks (LIKE {LEGACY}) PARTITION BY RANGE (id)")
    op.execute("ALTER TABLE checks ADD CONSTRAINT checks_pkey PRIMARY KEY (id)")
    for name, columns in INDEXES:
        op.execute(f"CREATE INDEX {name} ON checks ({columns})")
    op.execute("ALTER TABLE checks ADD CONSTRAINT checks_account_id_fkey "
               "FOREIGN KEY (account_id) REFERENCES accounts (id)")
    # A valid CHECK that implies the range spares ATTACH a second scan under its lock.
    op.execute(f"ALTER TABLE {LEGACY} ADD CONSTRAINT {LEGACY}_range "
               f"CHECK (id IS NOT NULL AND id < '{LEGACY_END}')")
    op.execute(f"ALTER TABLE checks ATTACH PARTITION {LEGACY} "
               f"FOR VALUES FROM (MINVALUE) TO ('{LEGACY_END}')")
    op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {LEGACY}_range")
    op.execute(f"CREATE TABLE {DEFAULT} PARTITION OF checks DEFAULT")
    create_missing(conn, datetime.now(UTC), ahead_days=1)  # the worker makes the rest
    for table, fk in REFERRERS:
        op.create_foreign_key(fk, table, "checks", ["check_id"], ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, fk in REFERRERS:
            op.drop_constraint(fk, table, type_="foreignkey")
        op.execute("ALTER TABLE checks RENAME TO checks_partitioned")
        op.execute("ALTER INDEX checks_pkey RENAME TO checks_partitioned_pkey")
        for name, _ in INDEXES:
            op.execute(f"ALTER INDEX {name} RENAME TO {name}_partitioned")
        op.execute("CREATE TABLE checks (LIKE checks_partitioned INCLUDING DEFAULTS)")
        op.execute("INSERT INTO checks SELECT * FROM checks_partitioned")
        op.execute("DROP TABLE checks_partitioned CASCADE")
        op.create_primary_key("checks_pkey", "checks", ["id"])
        for name, columns in INDEXES:
            op.execute(f"CREATE INDEX {name} ON checks ({columns})")
        op.create_foreign_key("checks_account_id_fkey", "checks", "accounts",
                              ["account_id"], ["id"])
        op.create_unique_constraint("uq_checks_idempotency", "checks",
                                    ["account_id", "idempotency_key"])
        for table, fk in REFERRERS:
            op.create_foreign_key(fk, table, "checks", ["check_id"], ["id"])
    else:
        with op.batch_alter_table("checks") as batch:
            batch.create_unique_constraint("uq_checks_idempotency",
                                           ["account_id", "idempotency_key"])
    op.drop_index("ix_check_keys_created", table_name="check_keys")
    op.drop_table("check_keys")
