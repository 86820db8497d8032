"""``checks`` partitioned by time on PostgreSQL, so that retention drops a day's table
instead of deleting its rows one by one (docs/recording.md).

A partitioned table's primary key must contain its partition key, and four tables refer
to ``checks.id``. So the partition key is the id itself, and a check's id carries the
time it was recorded and whether it is kept:

- ``chk_x<12 hex: milliseconds since 1970><20 hex: random>``: an allowed check, which
  retention may delete. Its rows go to one partition a day (``checks_allowed_YYYYMMDD``).
- ``chk_k<...same...>``: a refused or held check, evidence that is never deleted by
  retention. Its rows go to one partition a month (``checks_kept_YYYYMM``).
- ``chk_<32 hex>``: the ids given before this layout, in ``checks_legacy``.
- anything else, or a time no partition was made for yet: ``checks_other`` (the default
  partition), so a late maintenance job never fails a check.

The id column sorts bytewise (``COLLATE "C"``) whatever the database's collation, so the
ranges mean the same on every installation. SQLite keeps one plain table.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import sleep

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from consentry.store.database import Database

log = logging.getLogger(__name__)

PARENT = "checks"
LEGACY = "checks_legacy"
DEFAULT = "checks_other"
KEPT_PREFIX = "chk_k"  # sorts after every hex digit, so after every legacy id
ALLOWED_PREFIX = "chk_x"
LEGACY_END = KEPT_PREFIX
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's code for a lock not granted (timeout, NOWAIT)


def new_check_id(now: datetime, *, kept: bool) -> str:
    """A check's id: time-ordered (its partition) and marked kept or not (which table a
    retention may drop). Random enough (80 bits) that ids made in one millisecond differ."""
    millis = int(now.timestamp() * 1000)
    return f"{KEPT_PREFIX if kept else ALLOWED_PREFIX}{millis:012x}{secrets.token_hex(10)}"


def _bound(prefix: str, day: date) -> str:
    millis = int(datetime.combine(day, time(), UTC).timestamp() * 1000)
    return f"{prefix}{millis:012x}"


@dataclass(frozen=True)
class Partition:
    """One dated partition: its table and the days it covers (``start`` to ``end``)."""

    name: str
    start: date
    end: date
    kept: bool

    @property
    def bounds(self) -> tuple[str, str]:
        prefix = KEPT_PREFIX if self.kept else ALLOWED_PREFIX
        return _bound(prefix, self.start), _bound(prefix, self.end)

    @classmethod
    def allowed(cls, day: date) -> Partition:
        return cls(f"checks_allowed_{day:%Y%m%d}", day, day + timedelta(days=1), kept=False)

    @classmethod
    def kept_month(cls, day: date) -> Partition:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return cls(f"checks_kept_{start:%Y%m}", start, end, kept=True)

    @classmethod
    def from_name(cls, name: str) -> Partition | None:
        """The dated partition a table name stands for; None for legacy and default."""
        if name.startswith("checks_allowed_"):
            return cls.allowed(datetime.strptime(name[15:], "%Y%m%d").date())
        if name.startswith("checks_kept_"):
            return cls.kept_month(datetime.strptime(name[12:], "%Y%m").date())
        return None


def is_partitioned(db: Database) -> bool:
    return db.engine.dialect.name == "postgresql"


def is_partition_table(name: str) -> bool:
    """A partition of ``checks`` (not in the models: the parent stands for them all)."""
    return name in (LEGACY, DEFAULT) or Partition.from_name(name) is not None


def partitions(conn: Connection) -> list[str]:
    """The partitions of ``checks`` in the current schema."""
    return list(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY c.relname"),
        {"parent": PARENT}).scalars())


def create_partition(conn: Connection, part: Partition) -> bool:
    """Create ``part`` unless it exists; False when checks of its range already sit in
    the default partition (PostgreSQL would refuse the range: they stay there, and
    retention deletes them row by row like the legacy rows)."""
    low, high = part.bounds
    if conn.execute(text(f"SELECT 1 FROM {DEFAULT} WHERE id >= :low AND id < :high LIMIT 1"),
                    {"low": low, "high": high}).first():
        log.warning("checks of %s are in %s already: that range stays there", part.name,
                    DEFAULT)
        return False
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {part.name} PARTITION OF {PARENT} "
                      f"FOR VALUES FROM ('{low}') TO ('{high}')"))
    return True


def missing(conn: Connection, now: datetime, *, ahead_days: int) -> list[Partition]:
    """The partitions checks will need from yesterday to ``ahead_days`` ahead that do not
    exist yet."""
    today = now.astimezone(UTC).date()
    days = [today + timedelta(days=offset) for offset in range(-1, ahead_days + 1)]
    wanted = {p for day in days for p in (Partition.allowed(day), Partition.kept_month(day))}
    existing = set(partitions(conn))
    return sorted((p for p in wanted if p.name not in existing), key=lambda p: p.name)


def create_missing(conn: Connection, now: datetime, *, ahead_days: int) -> list[str]:
    """On ``conn``, make the ``missing`` partitions; the names it created."""
    return [part.name for part in missing(conn, now, ahead_days=ahead_days)
            if create_partition(conn, part)]


def ensure_partitions(db: Database, now: datetime, *, ahead_days: int = 7,
                      attempts: int = 40) -> list[str]:
    """``create_missing`` in a transaction of its own (the worker runs this hourly).

    Creating a partition locks ``checks``, its default partition and every table with a
    foreign key to or from it, one after another; a check being recorded takes some of
    the same locks in another order, and the two deadlocked (PostgreSQL then aborted one,
    sometimes the check). So every lock is taken first, all or none (``NOWAIT``), and if
    one is in use the attempt is given up and made again shortly: the job never waits
    holding a lock a check needs. After ``attempts`` the partitions are left for the next
    run (a week ahead is made, so several runs may pass)."""
    if not is_partitioned(db):
        return []
    with db.engine.connect() as conn:
        if not missing(conn, now, ahead_days=ahead_days):
            return []
    for _ in range(attempts):
        try:
            with db.engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = 2000"))  # should one be missed
                _lock_for_creation(conn)
                return create_missing(conn, now, ahead_days=ahead_days)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
        sleep(random.uniform(0.02, 0.08))  # spaced at random: two workers do not collide again
    log.warning("partitions of %s not made: its tables stayed in use; next run", PARENT)
    return []


def _lock_for_creation(conn: Connection) -> None:
    """Every lock ``CREATE TABLE ... PARTITION OF checks`` takes (read from pg_locks on
    PostgreSQL 15), or an error at once."""
    related = sorted(conn.execute(text(
        "SELECT DISTINCT CAST(CASE WHEN conrelid = p.oid THEN confrelid ELSE conrelid END "
        "AS regclass)::text FROM pg_constraint, (SELECT CAST(:parent AS regclass) AS oid) p "
        "WHERE contype = 'f' AND conparentid = 0 AND (conrelid = p.oid OR confrelid = p.oid) "
        "AND conrelid <> confrelid"), {"parent": PARENT}).scalars())
    if related:
        conn.execute(text(f"LOCK TABLE {', '.join(related)} IN SHARE ROW EXCLUSIVE MODE NOWAIT"))
    conn.execute(text(f"LOCK TABLE {PARENT}, {DEFAULT} IN ACCESS EXCLUSIVE MODE NOWAIT"))


def drop_expired_partitions(db: Database, *, before: datetime,
                            lock_timeout_ms: int = 2000) -> int:
    """Drop every allowed-check partition wholly older than ``before``, first deleting the
    conversation turns that refer to its checks; how many checks went with them.

    Detaching locks ``checks`` itself: a partition whose lock is not granted within
    ``lock_timeout_ms`` (a long transaction holds the table) is left for the next run
    rather than make every check queue behind the wait."""
    if not is_partitioned(db):
        return 0
    cutoff = before.astimezone(UTC)
    dropped = 0
    with db.engine.connect() as conn:
        names = partitions(conn)
    for name in names:
        part = Partition.from_name(name)
        if part is None or part.kept or datetime.combine(part.end, time(), UTC) > cutoff:
            continue
        try:
            with db.engine.begin() as conn:  # one partition a transaction: short locks
                conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
                rows = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
                conn.execute(text(f"DELETE FROM thread_turns t USING {name} c "
                                  "WHERE t.check_id = c.id"))
                conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {name}"))
                conn.execute(text(f"DROP TABLE {name}"))
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            log.warning("%s not dropped: %s stayed locked; next run", name, PARENT)
            continue
        dropped += rows
        log.info("dropped %s (allowed checks past retention)", name)
    return dropped


def days_ahead(conn: Connection, now: datetime) -> int:
    """How many days from today on have their allowed-check partition (0: today's checks
    go to the default partition; docs/operations.md alerts below 2)."""
    names = set(partitions(conn))
    day, count = now.astimezone(UTC).date(), 0
    while Partition.allowed(day + timedelta(days=count)).name in names:
        count += 1
    return count
