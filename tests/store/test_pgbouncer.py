"""The store behind a real PgBouncer in transaction mode, where one server connection
serves many clients in turn: the hot-path read timeout must hold there too, and must
never reach another client's transactions (a batch, a report) on a shared connection."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from live_server import free_port
from postgres_schema import POSTGRES_URL, postgres_schema
from server_process import wait_for
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from consentry.store import Database
from consentry.store.models import Account

pytestmark = pytest.mark.skipif(POSTGRES_URL is None,
                                reason="needs CONSENTRY_TEST_POSTGRES_URL")

READ_TIMEOUT_MS = 300


@dataclass(frozen=True)
class Pooled:
    direct: str  # straight to PostgreSQL, confined to the test's schema
    main: str  # through PgBouncer: what CONSENTRY_DATABASE_URL would be
    reads: str  # through PgBouncer's pool that bounds statements: CONSENTRY_DATABASE_READ_URL


@pytest.fixture
def pooled() -> Iterator[Pooled]:
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    assert os.path.exists(pgbouncer), "pgbouncer is missing: run make system-deps"
    with postgres_schema("pgb") as direct:
        schema = direct.rsplit("%3D", 1)[1]
        server = make_url(direct)
        login = f"user={server.username}" + (f" password={server.password}"
                                             if server.password else "")
        at = (f"host={server.host or '127.0.0.1'} port={server.port or 5432} "
              f"dbname={server.database} {login}")
        port = free_port()
        # The pooler drops root; what it reads must be readable by the user it becomes.
        folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        folder.chmod(0o755)
        (folder / "users.txt").write_text(f'"{server.username}" ""\n')
        path = f"SET search_path = {schema}"
        bound = f"SET statement_timeout = {READ_TIMEOUT_MS}"
        (folder / "pgbouncer.ini").write_text(f"""
[databases]
consentry = {at} connect_query='{path}'
consentry_reads = {at} connect_query='{path}; {bound}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 2
""")
        for name in ("users.txt", "pgbouncer.ini"):
            (folder / name).chmod(0o644)
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen([pgbouncer, *as_user, str(folder / "pgbouncer.ini")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        try:
            wait_for(listening, 10.0, "pgbouncer to listen", every_s=0.05)
            base = f"postgresql+psycopg://{server.username}@127.0.0.1:{port}"
            migrated = Database(f"{base}/consentry")  # migrations run through the pooler
            migrated.migrate()
            migrated.dispose()
            yield Pooled(direct, f"{base}/consentry", f"{base}/consentry_reads")
        finally:
            process.terminate()
            process.wait(10)
            shutil.rmtree(folder, ignore_errors=True)


def long_transactions_finish(db: Database, count: int = 4) -> None:
    # More transactions than the pooler has server connections: each connection serves
    # several, so a timeout left on one by another client would cancel one of these.
    for _ in range(count):
        with db.transaction() as s:
            assert s.execute(text(f"SELECT pg_sleep({READ_TIMEOUT_MS * 2 / 1000}), 1")
                             ).one()[1] == 1


def test_behind_pgbouncer_the_read_url_bounds_hot_reads_and_only_them(pooled: Pooled):
    db = Database(pooled.main, read_url=pooled.reads, read_timeout_s=30)
    lock_holder = create_engine(pooled.direct)
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with lock_holder.begin() as conn:
            conn.execute(text("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"))
            held.set()
            release.wait(30)

    locker = threading.Thread(target=hold_lock)
    locker.start()
    try:
        assert held.wait(10)
        db.can_read()  # the read pool answers (a statement that waits for no lock)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="statement timeout"), \
                db.reading() as conn:
            conn.execute(select(Account.id))
        # The pool's own bound, not read_timeout_s (30 s here): the read URL's is used.
        assert time.monotonic() - started < 5
    finally:
        release.set()
        locker.join(30)
        lock_holder.dispose()
    with db.reading() as conn:
        assert list(conn.execute(select(Account.id))) == []
    long_transactions_finish(db)
    db.dispose()


def test_without_a_read_url_pgbouncer_refuses_the_read_pool_and_leaves_transactions_alone(
        pooled: Pooled):
    """The read timeout travels as a startup option, which a transaction-mode pooler
    refuses outright: readiness says so at once, where a SET made after connecting would
    have stayed on a shared server connection and cancelled others' transactions."""
    db = Database(pooled.main, read_timeout_s=READ_TIMEOUT_MS / 1000)
    with pytest.raises(OperationalError, match="unsupported startup parameter"):
        db.can_read()
    long_transactions_finish(db)
    db.dispose()
