"""What the service shows Prometheus (``GET /metrics``, docs/operations.md#monitoring).

Two kinds of figure:

- counted where they happen, in this process: verdicts by kind, decision and policy
  clause, and how long each check took (``observe_verdict``, called once, where the gate
  records a verdict);
- read from the database when Prometheus asks (``Backlog``): open review items by queue,
  removal callbacks waiting, statements of reasons and CyberTipline reports waiting, the
  age of the oldest due work, and how far this process's match indexes trail the tables
  they follow. Each is one indexed ``COUNT``/``MIN``/``MAX``, and a scrape within
  ``ttl_s`` of the last one is answered from memory, so many scrapers cost one read.

Several server processes on one host (``uvicorn --workers``) share their counters
through prometheus_client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the processes start, and any of them answers for all. Without it
each process counts alone (one process per container, each scraped: the Kubernetes
manifests' choice).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from consentry.store import Database
from consentry.store.models import (
    LAST_RUN_PREFIX,
    BankEvent,
    ContentHash,
    CyberTipReport,
    DsaStatement,
    MaintenanceRun,
    RemovalJob,
    ReviewItem,
)
from consentry.store.partitions import days_ahead, is_partitioned

CONTENT_TYPE = CONTENT_TYPE_LATEST

VERDICTS = Counter("consentry_verdicts", "Verdicts recorded, by check kind, decision and "
                   "policy clause", ["kind", "decision", "clause"])
CHECK_SECONDS = Histogram(
    "consentry_check_seconds", "Time from a check's start to its recorded verdict, by kind",
    ["kind"], buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def observe_verdict(kind: str, decision: str, clause: str, seconds: float) -> None:
    """Count one recorded verdict and its latency. Labels come from the policy (a few
    dozen clauses), never from a request, so the series stay few."""
    VERDICTS.labels(kind, decision, clause).inc()
    CHECK_SECONDS.labels(kind).observe(seconds)


@dataclass(frozen=True)
class IndexState:
    """One match index as this process holds it."""

    name: str  # bank | content
    size: int  # hashes held
    watermark: int  # highest change-feed id applied


class Backlog:
    """A Prometheus collector of the work waiting in the database and the staleness of
    this process's match indexes. ``indexes`` says where those stand (read when scraped;
    empty where no index is loaded)."""

    def __init__(self, db: Database, indexes: Callable[[], Iterable[IndexState]] = tuple,
                 *, ttl_s: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.indexes = indexes
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.ttl_s:
                self._cached = (now, self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("consentry_database_up",
                               "1 if the last scrape could read the database, else 0")
        try:
            metrics = self._figures()
        except Exception:  # noqa: BLE001 - a scrape must answer; the gauge says it failed
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *metrics]

    def _figures(self) -> list[Metric]:
        now = self._clock()
        with self.db.transaction() as s:
            review = s.execute(select(ReviewItem.queue, func.count()).where(
                ReviewItem.status == "open").group_by(ReviewItem.queue)).all()
            removals = s.execute(select(RemovalJob.state, func.count()).where(
                RemovalJob.state.in_(("pending", "failed"))).group_by(RemovalJob.state)).all()
            oldest_removal = s.scalar(select(func.min(RemovalJob.next_attempt_at)).where(
                RemovalJob.state == "pending", RemovalJob.next_attempt_at <= now))
            statements = s.execute(select(DsaStatement.status, func.count()).where(
                DsaStatement.status.in_(("queued", "failed"))).group_by(
                DsaStatement.status)).all()
            oldest_statement = s.scalar(select(func.min(DsaStatement.created_at)).where(
                DsaStatement.status == "queued"))
            tips = s.execute(select(CyberTipReport.status, func.count()).where(
                CyberTipReport.status.in_(("draft", "confirmed", "failed"))).group_by(
                CyberTipReport.status)).all()
            newest = {"bank": s.scalar(select(func.max(BankEvent.id))) or 0,
                      "content": s.scalar(select(func.max(ContentHash.id))) or 0}
            ahead = days_ahead(s.connection(), now) if is_partitioned(self.db) else None
            last_runs = s.execute(select(MaintenanceRun.name, MaintenanceRun.done_at).where(
                MaintenanceRun.name.startswith(LAST_RUN_PREFIX))).all()

        def family(name: str, doc: str, label: str | None,
                   rows: Iterable[tuple[str, int]], every: Iterable[str] = ()) -> Metric:
            gauge = GaugeMetricFamily(name, doc, labels=[label] if label else None)
            values = dict.fromkeys(every, 0) | {str(k): int(v) for k, v in rows}
            for key, value in sorted(values.items()):
                gauge.add_metric([key] if label else [], value)
            return gauge

        def age(since: datetime | None) -> float:
            return max(0.0, (now - since).total_seconds()) if since is not None else 0.0

        lag = GaugeMetricFamily("consentry_job_lag_seconds",
                                "Age of the oldest work that is due and not yet done",
                                labels=["job"])
        lag.add_metric(["removal_callback"], age(oldest_removal))
        lag.add_metric(["dsa_statement"], age(oldest_statement))
        since = GaugeMetricFamily(
            "consentry_job_last_success_seconds", "Seconds since each periodic job (analytics "
            "export, exchange sync, partitions, purges...) last ran to the end; absent until "
            "it first has", labels=["job"])
        for name, done_at in sorted(last_runs):
            since.add_metric([name.removeprefix(LAST_RUN_PREFIX)], age(done_at))
        size = GaugeMetricFamily("consentry_index_hashes",
                                 "Hashes this process's match index holds", labels=["index"])
        behind = GaugeMetricFamily(
            "consentry_index_changes_behind", "Changes in the database this process's index "
            "has not applied yet (bank events, content hashes)", labels=["index"])
        for state in self.indexes():
            size.add_metric([state.name], state.size)
            behind.add_metric([state.name], max(0, newest[state.name] - state.watermark))
        return [
            family("consentry_review_items_open", "Open review items, by queue", "queue",
                   review),
            family("consentry_removal_jobs", "Removal callbacks waiting (pending) or given "
                   "up (failed)", "state", removals, ("pending", "failed")),
            family("consentry_dsa_statements", "Statements of reasons waiting to be sent "
                   "(queued) or refused by the database (failed)", "status", statements,
                   ("queued", "failed")),
            family("consentry_cybertip_reports", "CyberTipline reports awaiting "
                   "confirmation (draft), sending (confirmed), or failed", "status", tips,
                   ("draft", "confirmed", "failed")),
            lag, since, size, behind, *self._partitions(ahead),
        ]

    @staticmethod
    def _partitions(ahead: int | None) -> list[Metric]:
        if ahead is None:  # SQLite: one plain table
            return []
        gauge = GaugeMetricFamily(
            "consentry_check_partition_days_ahead", "Days from today whose partition of "
            "allowed checks exists (PostgreSQL; the worker keeps a week; 0: today's checks "
            "go to the default partition)")
        gauge.add_metric([], ahead)
        return [gauge]


class _ThisProcess:
    """This process's own registry (counters, process and runtime figures)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> str | None:
    """Where processes share counters, if several serve on this host."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(backlog: Backlog | None) -> bytes:
    """The text Prometheus reads: this process's (or, in multiprocess mode, every
    process's) counters, and the backlog."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    if backlog is not None:
        registry.register(backlog)
    return generate_latest(registry)
