"""Engine, sessions and migrations. SQLite (WAL) embedded by default, any URL otherwise."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from consentry.config import Settings
from consentry.store.watchdog import ReadWatchdog

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a writer commits; the busy timeout rides out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # Let SQLAlchemy, not the driver, open transactions (see _begin_immediate).
    dbapi_connection.isolation_level = None


def _begin_immediate(connection) -> None:
    # Take the write lock up front: a read-then-write transaction (standing, then strike)
    # must not lose to a concurrent writer halfway, which WAL would report as busy.
    # A plain read (Database.reading) takes no lock and opens no transaction.
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 20, connect_timeout_s: float = 5.0,
                statement_timeout_s: float | None = None,
                watchdog: ReadWatchdog | None = None) -> Engine:
    """Create an engine; for SQLite, create the folder and turn on WAL. ``pool_size``:
    connections kept open to a server database, as many again opened under bursts.
    ``connect_timeout_s`` bounds opening a PostgreSQL connection (unless the URL sets
    ``connect_timeout``); ``statement_timeout_s``, each of its statements; ``watchdog``,
    the ping that checks a connection idle in the pool."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    parsed = make_url(url)
    postgres = parsed.get_backend_name() == "postgresql"
    connect_args: dict[str, object] = {}
    if postgres and "connect_timeout" not in parsed.query:
        # libpq counts whole seconds; without it a host that drops packets holds the
        # connecting thread (on the event loop, the replica) for the kernel's minutes.
        connect_args["connect_timeout"] = max(2, round(connect_timeout_s))
    if postgres and statement_timeout_s is not None:
        # A startup option, not a SET once connected: behind PgBouncer in transaction
        # mode a SET would stay on the server connection and cancel other clients'
        # transactions (a batch, a report) after the read timeout. PgBouncer refuses the
        # option outright instead; such a fleet sets CONSENTRY_DATABASE_READ_URL.
        milliseconds = max(1, round(statement_timeout_s * 1000))
        options = parsed.query.get("options", "")
        connect_args["options"] = " ".join(
            [*([options] if isinstance(options, str) and options else []),
             f"-c statement_timeout={milliseconds}"])
    # A request that finds the pool empty opens a connection and closes it afterwards
    # (overflow): under load that churn cost a fifth of a replica's CPU, so the pool
    # keeps as many connections as a replica runs requests at once.
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size,
                           connect_args=connect_args)
    event.listen(engine, "checkin", _returned)
    event.listen(engine, "checkout", _ping_if_idle(engine.dialect, watchdog))
    return engine


# A connection that sat idle in the pool may have been closed by the server (a restart, a
# failover, an idle timeout): it is tried with a ping before use. One in use moments ago
# is not: pinging on every checkout (pool_pre_ping) was a round trip per request. Should
# the server go away under load, the statement on a dead connection fails (the request
# fails closed, 503) and SQLAlchemy drops every pooled connection opened before it.
IDLE_PING_S = 5.0


def _returned(_dbapi_connection, record) -> None:
    if record is not None:
        record.info["returned_at"] = time.monotonic()


def _ping_if_idle(dialect: Dialect, watchdog: ReadWatchdog | None) -> Callable[..., None]:
    def checkout(dbapi_connection, record, _proxy) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < IDLE_PING_S:
            return  # just opened, or in use moments ago
        try:
            if watchdog is None:
                dialect.do_ping(dbapi_connection)
            else:
                with watchdog.watching(dbapi_connection.fileno()):
                    dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("a pooled connection was closed by the server") from exc
    return checkout


def alembic_config() -> Config:
    """Alembic pointed at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def schema_state(engine: Engine) -> Literal["current", "behind", "ahead"]:
    """Where the schema stands against this code's migrations (reads one row): at their
    head, behind it (migrations to run), or ahead (a newer release's revision this code
    does not know: an expand step, which older code keeps working with)."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return "current"
    known = {revision.revision for revision in script.walk_revisions()}
    return "ahead" if current and not current <= known else "behind"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent). A schema ahead of this code
    (a newer release migrated it, and this older replica restarted during the rollout)
    is left as it is: expand migrations keep older code working (docs/operations.md)."""
    if schema_state(engine) == "ahead":
        return
    config = alembic_config()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a table by rebuilding it, which a table others refer to
            # survives only with foreign keys off (outside a transaction, as SQLite's
            # docs prescribe); they are checked before the migration commits.
            _sqlite_pragma(connection, "foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite and (broken := connection.exec_driver_sql(
                        "PRAGMA foreign_key_check").fetchall()):
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _sqlite_pragma(connection, "foreign_keys=ON")


def _sqlite_pragma(connection: Connection, setting: str) -> None:
    """A pragma sent past SQLAlchemy, so that it opens no transaction."""
    connection.connection.dbapi_connection.execute(f"PRAGMA {setting}")  # type: ignore[union-attr]


class Database:
    """The store's entry point: one engine, short transactions."""

    def __init__(self, url: str, *, pool_size: int = 20, read_timeout_s: float = 2.0,
                 connect_timeout_s: float = 5.0, read_url: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, connect_timeout_s=connect_timeout_s)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Hot-path reads (``reading``) have a pool of their own whose statements the server
        # cancels after ``read_timeout_s``: one runs on the event loop for a text check,
        # and a database that stopped answering must fail that request (503), not stall
        # the replica. Transactions (a batch, a migration, a report) are not bounded.
        # ``read_url`` (behind a pooler) reaches the same database with the timeout set
        # there, by the pooler or the role (docs/operations.md). SQLite reads in WAL mode
        # wait for no writer: they share the one engine.
        self._watchdog: ReadWatchdog | None = None
        if url.startswith("sqlite"):
            self._reads = self.engine
        else:
            # A server that froze cancels nothing: the client cuts the read itself, late
            # enough that a live server's own cancellation always comes first.
            self._watchdog = ReadWatchdog(max(2 * read_timeout_s, read_timeout_s + 1.0))
            self._reads = make_engine(
                read_url or url, pool_size=pool_size, connect_timeout_s=connect_timeout_s,
                statement_timeout_s=None if read_url else read_timeout_s,
                watchdog=self._watchdog)

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """The database ``settings`` name (SQLite in the data folder by default)."""
        return cls(settings.resolved_database_url, pool_size=settings.database_pool,
                   read_timeout_s=settings.database_read_timeout_s,
                   connect_timeout_s=settings.database_connect_timeout_s,
                   read_url=settings.database_read_url)

    def migrate(self) -> None:
        migrate(self.engine)

    def schema_state(self) -> Literal["current", "behind", "ahead"]:
        """Whether every migration this code needs has run (``schema_state``)."""
        return schema_state(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together or not at all."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads on the hot path, outside any transaction: each statement
        sees what is committed when it runs, with no BEGIN and COMMIT round trips (and on
        SQLite no write lock). For a read that one statement answers; a read that must
        agree with a write that follows belongs in ``transaction``. On a server database a
        statement that runs past the read timeout raises ``OperationalError``, and so does
        a block the server has not answered in twice that (``ReadWatchdog``)."""
        with self._reads.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            driver = conn.connection.driver_connection
            if self._watchdog is None or driver is None:
                yield conn
                return
            with self._watchdog.watching(driver.fileno()):
                yield conn

    @contextmanager
    def exclusive(self, name: str, key: int) -> Iterator[bool]:
        """Whether this caller alone holds the lock ``name`` among every process that
        shares this database, for the ``with`` block; never waits (False: another holds
        it). The lock goes with its holder, so a process that dies frees it. On
        PostgreSQL, the advisory lock ``key`` of a transaction held open for the block
        (keep a key once released: old and new replicas must exclude each other during a
        rolling upgrade); on a SQLite file, ``flock`` on the file ``<database>.<name>.lock``
        (SQLite serves one host); an in-memory SQLite database lives in one process, where
        the caller keeps its threads apart. Not re-entrant across threads: keep a thread
        lock in front of it."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as held:
                yield bool(held.scalar(select(func.pg_try_advisory_xact_lock(key))))
            return
        path = self.engine.url.database
        if not path or path == ":memory:" or path.startswith("file::memory:"):
            yield True
            return
        with open(f"{path}.{name}.lock", "a+b") as lock:  # closing it releases the lock
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            yield alone

    def can_read(self) -> None:
        """Raise unless ``reading`` answers: its pool may reach the database another way
        (``read_url``), and a pooler that refuses it must show before a request does."""
        with self.reading() as conn:
            conn.execute(select(1))

    def dispose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        self.engine.dispose()
        self._reads.dispose()
