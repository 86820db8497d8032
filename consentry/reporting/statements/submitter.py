"""Sends the queued statements to the Transparency Database, 100 a call, oldest first.

Idempotent by ``puid``: a statement is marked ``sent`` only on the database's word (its
uuid, or its answer that it already holds the puid, as after a lost answer), so a crash
or a failure between sending and recording costs at most a resend that the database
answers "already there". A batch the database refuses as a whole (an invalid statement
in it, a duplicate) is sent again without the statements it named: an invalid one is
marked ``failed`` with the database's field errors (a fault in the builder, for a
person to fix), never dropped. When the database cannot be reached the statements stay
``queued`` with their attempt counted and a later retry time. Runs in the worker's
housekeeping (``StatementSubmitter.submit_due``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import or_, select

from consentry import audit
from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.reporting.statements.client import (
    BATCH_MAX,
    DatabaseSettings,
    TransparencyDatabase,
)
from consentry.store import Database
from consentry.store.models import DsaStatement

log = logging.getLogger(__name__)

_FIRST_RETRY: Final = timedelta(minutes=1)
_LONGEST_WAIT: Final = timedelta(hours=6)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def retry_at(now: datetime, attempts: int) -> datetime:
    """When a statement that failed ``attempts`` times is due again."""
    return now + min(_FIRST_RETRY * 2 ** min(attempts - 1, 20), _LONGEST_WAIT)


@dataclass
class SubmissionRound:
    calls: int = 0
    sent: int = 0
    already_there: int = 0
    failed: int = 0
    deferred: int = 0  # left queued for a later round (the database unavailable)
    error: str | None = None


class StatementSubmitter:
    def __init__(self, db: Database, database: TransparencyDatabase | None, *,
                 clock: Callable[[], datetime] = _utc_now, batch_size: int = BATCH_MAX) -> None:
        if not 1 <= batch_size <= BATCH_MAX:
            raise ValueError(f"batch_size must be 1 to {BATCH_MAX}")
        self.db = db
        self.database = database
        self._clock = clock
        self.batch_size = batch_size

    def submit_due(self, *, max_calls: int | None = None) -> SubmissionRound:
        """Send every due statement; stops early when the database is unavailable.
        Without a database configured, statements are kept and nothing is sent."""
        done = SubmissionRound()
        if self.database is None:
            return done
        while max_calls is None or done.calls < max_calls:
            batch = self._due()
            if not batch or not self._send(batch, done, max_calls):
                break
        if done.calls:
            log.info("DSA statements: %d calls, %d sent, %d already there, %d failed, "
                     "%d deferred", done.calls, done.sent, done.already_there, done.failed,
                     done.deferred)
        return done

    def _due(self) -> list[tuple[str, dict[str, Any]]]:
        now = self._clock()
        with self.db.transaction() as s:
            rows = s.execute(
                select(DsaStatement.puid, DsaStatement.statement)
                .where(DsaStatement.status == "queued",
                       or_(DsaStatement.next_attempt_at.is_(None),
                           DsaStatement.next_attempt_at <= now))
                .order_by(DsaStatement.created_at, DsaStatement.puid)
                .limit(self.batch_size)).all()
        return [(puid, statement) for puid, statement in rows]

    def _send(self, batch: list[tuple[str, dict[str, Any]]], done: SubmissionRound,
              max_calls: int | None) -> bool:
        """One batch, resent without what the database named until it is taken; False
        when the round should stop."""
        assert self.database is not None
        pending = batch
        while pending:
            if max_calls is not None and done.calls >= max_calls:
                return False
            answer = self.database.post([s for _, s in pending])
            done.calls += 1
            if answer.created:
                self._mark_sent(answer.created, done)
                return True
            puids = [p for p, _ in pending]
            existing = [p for p in answer.existing if p in puids]
            invalid = {puids[i]: errors for i, errors in answer.invalid.items()
                       if 0 <= i < len(puids)}
            if not existing and not invalid:
                self._defer(puids, answer.error or "no answer", done)
                return False
            if existing:
                self._mark_sent(dict.fromkeys(existing, None), done, already=True)
            if invalid:
                self._mark_failed(invalid, done)
            pending = [(p, s) for p, s in pending if p not in existing and p not in invalid]
        return True

    def _mark_sent(self, sent: Mapping[str, str | None], done: SubmissionRound, *,
                   already: bool = False) -> None:
        now = self._clock()
        with self.db.transaction() as s:
            for row in s.scalars(select(DsaStatement).where(DsaStatement.puid.in_(sent))):
                row.status, row.sent_at, row.last_error = "sent", now, None
                row.attempts += 1
                row.database_id = sent[row.puid] or row.database_id
            # The chain records what left for the database, by puid (no personal data).
            audit.record(s, "dsa.statements_sent", next(iter(sent)), "system",
                         puids=sorted(sent), already_there=already)
        if already:
            done.already_there += len(sent)
        else:
            done.sent += len(sent)

    def _mark_failed(self, invalid: dict[str, Any], done: SubmissionRound) -> None:
        with self.db.transaction() as s:
            for row in s.scalars(select(DsaStatement).where(DsaStatement.puid.in_(invalid))):
                row.status, row.attempts = "failed", row.attempts + 1
                row.last_error = json.dumps(invalid[row.puid])[:2000]
        log.error("DSA statements refused as invalid (fix the builder and requeue): %s",
                  ", ".join(sorted(invalid)))
        done.failed += len(invalid)

    def _defer(self, puids: Sequence[str], error: str, done: SubmissionRound) -> None:
        now = self._clock()
        with self.db.transaction() as s:
            for row in s.scalars(select(DsaStatement).where(DsaStatement.puid.in_(puids))):
                row.attempts += 1
                row.next_attempt_at = retry_at(now, row.attempts)
                row.last_error = error[:2000]
        log.warning("DSA statements deferred (%d): %s", len(puids), error)
        done.deferred += len(puids)
        done.error = error


def submitter_for(db: Database, settings: Settings) -> StatementSubmitter:
    """The submitter configured by ``CONSENTRY_DSA_URL`` and ``CONSENTRY_DSA_TOKEN`` (both
    unset: one that keeps statements and sends nothing; one without the other: an error
    at start)."""
    if not settings.dsa_url and not settings.dsa_token:
        return StatementSubmitter(db, None)
    if not (settings.dsa_url and settings.dsa_token):
        raise ConfigurationError("set both CONSENTRY_DSA_URL and CONSENTRY_DSA_TOKEN, or "
                                 "neither (statements are then kept and not sent)")
    return StatementSubmitter(db, TransparencyDatabase(
        DatabaseSettings(settings.dsa_url, settings.dsa_token)))
