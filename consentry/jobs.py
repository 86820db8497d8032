"""Background work: every job the service runs outside a request, when it runs, and the
two engines that run it (docs/fleet.md).

- ``embedded`` (CONSENTRY_JOBS=embedded, the default): a thread of the API process runs
  every job in rounds (``consentry.cases.worker.CaseWorker``). One process, nothing else
  to run, SQLite or PostgreSQL.
- ``procrastinate`` (CONSENTRY_JOBS=procrastinate): a job queue kept in PostgreSQL.
  ``consentry worker`` processes run the jobs on their schedules (each period's job is
  deferred once for all workers) and when an event asks for one (removal callbacks after
  a takedown); API replicas run none, they only defer. A worker killed mid-job leaves its
  job ``doing``: once its heartbeat is stale another worker retries it.

Both engines run the same functions (``Jobs``). Every job keeps its own state in the
database, claimed with a lease and idempotent (intake jobs, removal jobs, notices sent at
most once), so a job retried after a crash, or run by two workers, does nothing twice
that would harm.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from consentry.banks.exchange_sync import sync_banks
from consentry.banks.registry import BankRegistry, ExchangeImport
from consentry.cases.worker import CaseWorker
from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.store import Database
from consentry.store.dialect import upsert_insert
from consentry.store.models import LAST_RUN_PREFIX, MaintenanceRun
from consentry.store.partitions import ensure_partitions
from consentry.store.retention import purge_allowed_checks

if TYPE_CHECKING:
    import procrastinate

    from consentry.audit.checkpoints import Signer
    from consentry.cases.review import ReviewQueues
    from consentry.cases.takedowns import TakedownService
    from consentry.evidence import Vault
    from consentry.people.sessions import Sessions
    from consentry.reporting.cybertip_desk import CyberTipDesk
    from consentry.reporting.statements.submitter import StatementSubmitter

_log = logging.getLogger(__name__)

Job = Callable[[], object]

# Cron as procrastinate reads it: a sixth column is seconds.
EVERY_ROUND = "* * * * * */5"
HOURLY = "17 * * * *"


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str  # on the job engine
    hourly: bool = False  # embedded: hourly rather than every round (5 s)


SCHEDULE: tuple[Schedule, ...] = (
    Schedule("intake.resume", EVERY_ROUND),  # intake a crashed process left
    Schedule("removals.dispatch", EVERY_ROUND),  # removal callbacks due, retries; settle
    Schedule("cybertip.draft", EVERY_ROUND),  # CyberTipline reports from sealed evidence
    Schedule("cybertip.send", EVERY_ROUND),  # ... and sent once a person confirmed them
    Schedule("statements.submit", EVERY_ROUND),  # DSA statements of reasons due
    Schedule("limits.prune", HOURLY, hourly=True),  # expired rate-limit counts
    Schedule("sessions.prune", HOURLY, hourly=True),  # expired console sessions
    Schedule("evidence.purge", HOURLY, hourly=True),  # sealed evidence past retention
    Schedule("audit.checkpoint", HOURLY, hourly=True),  # the audit chain's head signed
    Schedule("ncii.drop_settled_media", HOURLY, hourly=True),  # NCII images once settled
    Schedule("checks.purge_allowed", HOURLY, hourly=True),  # allowed checks past retention
    Schedule("checks.partitions", HOURLY, hourly=True),  # PostgreSQL: a week of partitions
    # New checks to the analytics engine (CONSENTRY_CLICKHOUSE_URL), if one is configured.
    Schedule("analytics.export", "*/5 * * * *", hourly=True),
    # Banks kept in sync with StopNCII, NCMEC, ... (CONSENTRY_EXCHANGE_SYNCS), if any.
    Schedule("exchanges.sync", "*/15 * * * *", hourly=True),
)


class Jobs:
    """The background jobs of one process, by name (``SCHEDULE``'s names)."""

    def __init__(self, functions: Mapping[str, Job]) -> None:
        missing = {s.name for s in SCHEDULE} - set(functions)
        if missing:
            raise ValueError(f"no function for the jobs {sorted(missing)}")
        self.functions = dict(functions)

    def run(self, name: str) -> object:
        return self.functions[name]()

    def embedded(self, *, every_s: float = 5.0) -> CaseWorker:
        """The in-process runner of these jobs (CONSENTRY_JOBS=embedded)."""
        return CaseWorker([(s.name, self.functions[s.name]) for s in SCHEDULE if not s.hourly],
                          [(s.name, self.functions[s.name]) for s in SCHEDULE if s.hourly],
                          every_s=every_s)


def case_jobs(takedowns: TakedownService, *, sessions: Sessions, vault: Vault, signer: Signer,
              queues: ReviewQueues, cybertip: CyberTipDesk, dsa: StatementSubmitter,
              settings: Settings) -> Jobs:
    """The jobs over the services an API process (or a worker) has built."""
    appeal_window = timedelta(days=takedowns.policy.enforcement.appeal_window_days)
    retention_days = settings.check_retention_days

    def purge_allowed() -> int:  # CONSENTRY_CHECK_RETENTION_DAYS; unset: kept
        if not retention_days:
            return 0
        return purge_allowed_checks(takedowns.db,
                                    before=takedowns.now() - timedelta(days=retention_days))

    def export_analytics() -> int:  # CONSENTRY_CLICKHOUSE_URL; unset: nothing to feed
        if not settings.clickhouse_url:
            return 0
        from consentry.reporting.analytics import export_recent
        from consentry.store.clickhouse import configured_clickhouse

        with configured_clickhouse(settings) as engine:
            return export_recent(takedowns.db, engine, takedowns.now())

    def sync_exchanges() -> int:  # CONSENTRY_EXCHANGE_SYNCS; unset: nothing to follow
        if not settings.exchange_syncs:
            return 0
        importer = ExchangeImport(BankRegistry(takedowns.db, clock=takedowns.now))
        return sync_banks(importer, settings.exchange_syncs).changed

    functions: dict[str, Job] = {
        "intake.resume": takedowns.resume_intake,
        "removals.dispatch": takedowns.removals.dispatch,
        "cybertip.draft": cybertip.draft_pending,
        "cybertip.send": cybertip.send_confirmed,
        "statements.submit": dsa.submit_due,
        "limits.prune": takedowns.limits.prune,
        "sessions.prune": sessions.prune,
        "evidence.purge": vault.purge_expired,
        "audit.checkpoint": signer.checkpoint,
        "ncii.drop_settled_media": lambda: queues.drop_settled_media(appeal_window),
        "checks.purge_allowed": purge_allowed,
        "checks.partitions": lambda: len(ensure_partitions(takedowns.db, takedowns.now())),
        "analytics.export": export_analytics,
        "exchanges.sync": sync_exchanges,
    }
    periodic = {s.name for s in SCHEDULE if s.hourly}
    return Jobs({name: remembered(takedowns.db, name, job, takedowns.now)
                 if name in periodic else job for name, job in functions.items()})


def remembered(db: Database, name: str, job: Job, clock: Callable[[], datetime]) -> Job:
    """``job``, recording when it last ran to the end (``maintenance_runs``, named
    ``job:<name>``): /metrics shows how long ago, so an export or a sync that stopped
    succeeding shows before what it feeds goes stale. Periodic jobs only: the jobs of
    every round have their own lag gauges, and a write each round would be noise."""
    def run() -> object:
        result = job()
        done = {"done_at": clock(), "count": result if isinstance(result, int) else 0}
        with db.transaction() as s:
            s.execute(upsert_insert(s, MaintenanceRun).values(
                name=LAST_RUN_PREFIX + name, **done).on_conflict_do_update(
                index_elements=["name"], set_=done))
        return result
    return run


@dataclass
class WorkerServices:
    """What a worker process builds for itself: the jobs, and how to close them."""

    jobs: Jobs
    close: Callable[[], None]


def worker_services(settings: Settings) -> WorkerServices:
    """Build the services the jobs need, as an API process does, for a worker of its own."""
    from consentry.audit.checkpoints import signer_for
    from consentry.cases.review import ReviewQueues
    from consentry.cases.takedowns import TakedownService
    from consentry.gate import Gate
    from consentry.people import People
    from consentry.reporting import statements
    from consentry.reporting.cybertip_desk import CyberTipDesk
    from consentry.reporting.statements.submitter import submitter_for
    from consentry.store import Database

    db = Database.open(settings)
    db.migrate()
    gate = Gate(db, settings=settings)
    statements.install(gate.policy.version)
    svc = TakedownService.from_settings(db, gate.banks, gate.policy, settings,
                                        sandbox=gate.sandbox, vault=gate.vault)
    queues = ReviewQueues(db, clock=svc.now, reveals_per_shift=settings.reveals_per_shift,
                          case_view=lambda n: svc.view(n).to_dict(svc.now()), vault=gate.vault)
    jobs = case_jobs(svc, sessions=People.open(db, settings).sessions, vault=gate.vault,
                     signer=signer_for(db, settings), queues=queues,
                     cybertip=CyberTipDesk(db, gate.vault, settings=settings, clock=svc.now),
                     dsa=submitter_for(db, settings), settings=settings)

    def close() -> None:
        svc.close()
        gate.close()
        db.dispose()

    return WorkerServices(jobs, close)


# -- the job engine: procrastinate on PostgreSQL ------------------------------------------

QUEUE = "consentry"
DISPATCH_NOW = "consentry.removals.dispatch_now"
RETRY_STALLED = "consentry.jobs.retry_stalled"
HEARTBEAT_S = 2.0  # a worker says it is alive this often
STALLED_S = 10.0  # a worker silent this long is dead: its jobs are retried elsewhere
_SCHEMA_LOCK = 0x636F6E73  # advisory lock: one process applies the queue's schema


def conninfo(database_url: str) -> str:
    """The libpq address of the job queue: the service's own PostgreSQL database."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError("CONSENTRY_JOBS=procrastinate needs PostgreSQL: set "
                                 "CONSENTRY_DATABASE_URL=postgresql+psycopg://... (the "
                                 "embedded default, SQLite, runs jobs in-process)")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_queue_schema(settings: Settings) -> bool:
    """Create procrastinate's tables in the service's database unless they exist. Safe
    from several processes at once; returns whether they were created now."""
    import psycopg
    from procrastinate.schema import SchemaManager

    with (psycopg.connect(conninfo(settings.resolved_database_url), autocommit=True) as conn,
          conn.transaction()):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if row is not None and row[0] is not None:
            return False
        conn.execute(SchemaManager.get_schema())
    _log.info("job queue: procrastinate's schema created")
    return True


def job_queue(connector: Any, jobs: Callable[[], Jobs]) -> procrastinate.App:
    """The procrastinate app: every scheduled job as a periodic task, removal dispatch as
    a task to defer, and the sweep that retries the jobs of dead workers. ``jobs`` is
    called (once) by a worker when it first runs a job; an API process only defers."""
    import procrastinate

    app = procrastinate.App(connector=connector)
    built: list[Jobs] = []
    building = threading.Lock()  # sync tasks run on several threads at once

    def run(name: str) -> None:
        with building:
            if not built:
                built.append(jobs())
        built[0].run(name)

    for spec in SCHEDULE:
        _periodic(app, spec, run)

    # After a takedown, a worker calls the platform now rather than at the next round.
    # Running it twice is harmless (removal jobs are claimed), so a burst of takedowns
    # queues one; retried with backoff if it fails as a whole.
    @app.task(name=DISPATCH_NOW, queue=QUEUE, queueing_lock=DISPATCH_NOW,
              retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=2))
    def dispatch_now() -> None:
        run("removals.dispatch")

    @app.periodic(cron="* * * * * */5", periodic_id="stalled")
    @app.task(name=RETRY_STALLED, queue=QUEUE, queueing_lock=RETRY_STALLED, pass_context=True)
    async def retry_stalled(context: procrastinate.JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S):
            _log.warning("job queue: %s (job %s) was left by a dead worker; retrying",
                         job.task_name, job.id)
            await manager.retry_job(job)

    return app


def _periodic(app: procrastinate.App, spec: Schedule, run: Callable[[str], None]) -> None:
    # One job waits at most (queueing lock): a slow worker never builds a backlog.
    @app.periodic(cron=spec.cron, periodic_id=spec.name)
    @app.task(name=f"consentry.{spec.name}", queue=QUEUE, queueing_lock=spec.name)
    def scheduled(timestamp: int) -> None:
        run(spec.name)


def run_queue_worker(settings: Settings, *, concurrency: int = 4) -> None:
    """``consentry worker`` on the job engine: runs until SIGTERM / SIGINT."""
    from procrastinate import PsycopgConnector

    ensure_queue_schema(settings)
    services = worker_services(settings)  # built (and migrated) before any job runs
    app = job_queue(PsycopgConnector(conninfo=conninfo(settings.resolved_database_url)),
                    lambda: services.jobs)
    try:
        app.run_worker(queues=[QUEUE], concurrency=concurrency, delete_jobs="successful",
                       update_heartbeat_interval=HEARTBEAT_S, stalled_worker_timeout=STALLED_S)
    finally:
        services.close()


class JobDeferrer:
    """What an API replica keeps of the job engine: a way to ask a worker for work."""

    def __init__(self, settings: Settings) -> None:
        from procrastinate import SyncPsycopgConnector

        ensure_queue_schema(settings)
        self.app = job_queue(SyncPsycopgConnector(
            conninfo=conninfo(settings.resolved_database_url), min_size=1, max_size=4),
            _no_jobs_here)
        self.app.open()

    def dispatch_soon(self) -> None:
        """Ask a worker to make the removal callbacks that are due."""
        from procrastinate.exceptions import AlreadyEnqueued

        # One waiting already will find these callbacks too.
        with contextlib.suppress(AlreadyEnqueued):
            self.app.tasks[DISPATCH_NOW].defer()

    def close(self) -> None:
        self.app.close()


def _no_jobs_here() -> Jobs:
    raise RuntimeError("an API process defers jobs; `consentry worker` runs them")
