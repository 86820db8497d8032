"""SQLAlchemy models. Schema changes go through Alembic (store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as aware UTC on every backend (SQLite would
    otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}  # noqa: RUF012


class Account(Base):
    """A platform account as the gate knows it; its standing is derived from strikes and
    suspensions, which are append-only."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column()


class CheckRecord(Base):
    """One gate decision (generation, output or upload), with the verdict as returned."""

    __tablename__ = "checks"
    # On PostgreSQL partitioned by id, which carries the time (consentry.store.partitions).
    __table_args__ = (
        Index("ix_checks_account_created", "account_id", "created_at"),
        Index("ix_checks_decision_created", "decision", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # generation | output | upload
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    # The platform's id for an upload or output: what a callback restores when a refusal
    # is overturned.
    content_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    decision: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(40))
    clause: Mapped[str] = mapped_column(String(10))
    policy_version: Mapped[str] = mapped_column(String(40))
    # The prompt is kept only when the request was refused or sent to review: it is the
    # evidence. Allowed prompts keep only their digest.
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_sha256: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What the request was (kind, prompt, image digests, ids): a reused idempotency key is
    # replayed only for the same request, never for a different one.
    request_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verdict: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column()


class CheckKey(Base):
    """An account's idempotency key and the check it was first used for. A table of its
    own because a partitioned ``checks`` cannot hold a key unique across partitions. Kept
    as long as allowed checks are (``consentry.store.retention``)."""

    __tablename__ = "check_keys"
    __table_args__ = (Index("ix_check_keys_created", "created_at"),)

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # No foreign key: a partition of checks is dropped whole, its keys deleted first.
    check_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column()


class CheckMedia(Base):
    """An image of a refused or held request, kept for the people who review it: its
    bytes are sealed in the evidence vault (``evidence_id``), never stored here. Allowed
    requests keep none. (``content`` held the bytes before the vault; rows that still
    have it are sealed and emptied at start.)"""

    __tablename__ = "check_media"

    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    evidence_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"),
                                                    nullable=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Strike(Base):
    __tablename__ = "strikes"
    __table_args__ = (Index("ix_strikes_account_expires", "account_id", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    check_id: Mapped[str | None] = mapped_column(ForeignKey("checks.id"), nullable=True)
    clause: Mapped[str] = mapped_column(String(10))
    weight: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    # Set when an appeal or a moderator overturns the strike; the row itself stays.
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The takedown case the strike was given under (None: a gate check).
    takedown_case: Mapped[str | None] = mapped_column(String(20), nullable=True)


class Suspension(Base):
    __tablename__ = "suspensions"
    __table_args__ = (Index("ix_suspensions_account", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    check_id: Mapped[str | None] = mapped_column(ForeignKey("checks.id"), nullable=True)
    clause: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime | None] = mapped_column(nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # A CS-1 suspension in force until a child-safety reviewer confirms it (then it is
    # permanent) or lifts it; never permanent on the automation's word alone.
    pending_review: Mapped[bool] = mapped_column(default=False)


class ApiKey(Base):
    """A service credential. Only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Bank(Base):
    """A named hash bank. ``kind`` block: matches refuse content; allow: matches suppress
    block matches on known benign images that collide."""

    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # block | allow
    category: Mapped[str] = mapped_column(String(20))  # csam | ncii | own_refusals | other
    clause: Mapped[str] = mapped_column(String(10))  # policy clause a match is decided under
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)


class BankEntry(Base):
    """One banked image (or bare hash from an exchange). Never deleted: removal and
    withdrawal are recorded, so history and audits stay whole."""

    __tablename__ = "bank_entries"
    __table_args__ = (
        Index("ix_bank_entries_md5", "md5"),
        Index("ix_bank_entries_pdq", "bank_id", "pdq"),
        Index("ix_bank_entries_external", "bank_id", "source", "external_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"))
    source: Mapped[str] = mapped_column(String(40))  # manual | gate | stopncii | ncmec | ...
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the primary hash
    pdq_quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    clause: Mapped[str | None] = mapped_column(String(10), nullable=True)  # overrides bank's
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    takedown_case: Mapped[str | None] = mapped_column(String(40), nullable=True)
    added_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class BankEntryHash(Base):
    """The PDQ hashes that stand for an entry in the index (whole image and the variants
    that make crops match). The row id is the id the index returns."""

    __tablename__ = "bank_entry_hashes"
    __table_args__ = (Index("ix_bank_entry_hashes_entry", "entry_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id"))
    pdq: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(20))


class BankEvent(Base):
    """Append-only log of every bank change. It is also the index's change feed: an index
    replays events after the last one it has seen, so a change is effective at once in
    every process and a restart never rehashes."""

    __tablename__ = "bank_events"
    __table_args__ = (Index("ix_bank_events_bank", "bank_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("bank_entries.id"), nullable=True)
    # bank_created | bank_disabled | bank_enabled | entry_added | entry_disabled |
    # entry_enabled | entry_removed | import_batch
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExchangeCheckpoint(Base):
    """Where a bank's sync with an exchange stands; written in the same transaction as the
    batch it follows, so an interrupted import resumes without gaps or duplicates."""

    __tablename__ = "exchange_checkpoints"

    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id"), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(40), primary_key=True)
    checkpoint: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column()


class ContentItem(Base):
    """Content on the platform (an upload or a generated output) with its hashes, so that
    a hash banked later finds the copies already there."""

    __tablename__ = "content_items"
    __table_args__ = (Index("ix_content_items_md5", "md5"),
                      Index("ix_content_items_url", "url"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # upload | output
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    md5: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_at: Mapped[datetime] = mapped_column()
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ContentHash(Base):
    """PDQ hashes of a content item; the row id is the id the content index returns."""

    __tablename__ = "content_hashes"
    __table_args__ = (Index("ix_content_hashes_item", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("content_items.id"))
    pdq: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(20))


class TakedownCase(Base):
    """A takedown request and its case. What happened to it is in ``case_events``
    (append-only); its status is derived from them, never stored."""

    __tablename__ = "takedown_cases"
    __table_args__ = (Index("ix_takedown_cases_open_deadline", "closed_at", "deadline_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(200))  # scrypt; the PIN itself is never kept
    regime: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(20))  # web | api | cli
    received_at: Mapped[datetime] = mapped_column()
    deadline_at: Mapped[datetime] = mapped_column()
    # The request as submitted (contact details, declarations, locators); personal data,
    # never logged.
    submission: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    merged_into: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # Denormalised from the events so open cases can be listed by deadline cheaply.
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class CaseKey(Base):
    """What a case points at (content id, URL, MD5, PDQ), to merge duplicate requests."""

    __tablename__ = "case_keys"
    __table_args__ = (Index("ix_case_keys_key", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("takedown_cases.id"))
    key: Mapped[str] = mapped_column(String(300))


class CaseEvent(Base):
    """Append-only history of a case: received, incomplete, located, removed, ..."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case", "case_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("takedown_cases.id"))
    kind: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(200))
    automated: Mapped[bool] = mapped_column(default=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RemovalJob(Base):
    """One platform callback to make (remove or restore one content item), retried with
    backoff until it succeeds or runs out of attempts."""

    __tablename__ = "removal_jobs"
    __table_args__ = (Index("ix_removal_jobs_due", "state", "next_attempt_at"),
                      Index("ix_removal_jobs_case", "case_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The takedown case, or the review decision (a refusal overturned), it is made for.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("takedown_cases.id"), nullable=True)
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"),
                                                       nullable=True)
    content_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(10))  # remove | restore
    # Sent with every attempt so the platform can ignore repeats.
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    state: Mapped[str] = mapped_column(String(10))  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RemovalAttempt(Base):
    """Every callback attempt, successful or not: nothing is removed without a record."""

    __tablename__ = "removal_attempts"
    __table_args__ = (Index("ix_removal_attempts_job", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("removal_jobs.id"))
    at: Mapped[datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(20))  # ok | gone | http_error | unreachable
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class Notification(Base):
    """Every message sent (or attempted) to a requester or an uploader."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_case", "case_id"),
                      Index("ux_notifications_once_key", "once_key", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The takedown case or the review item the message is about (one of them).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("takedown_cases.id"), nullable=True)
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"),
                                                       nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    # Sealed (``evidence.fields``) where it is an address; ``account:<id>`` is left as is.
    recipient: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(20))
    delivered: Mapped[bool] = mapped_column()
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column()
    # A notice that must leave at most once (``CaseLog.send(once=...)``): a digest of the
    # case, kind, recipient and occasion, claimed by inserting this row before sending.
    once_key: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CaseJob(Base):
    """Work a recorded case is owed (acknowledge, locate, bank, queue removals), written in
    the same transaction as the case, so that a crash after intake leaves a job a worker
    finishes rather than a case that stays ``received`` for ever."""

    __tablename__ = "case_jobs"
    __table_args__ = (Index("ix_case_jobs_due", "state", "claimed_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("takedown_cases.id"))
    kind: Mapped[str] = mapped_column(String(20))  # intake
    state: Mapped[str] = mapped_column(String(10))  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A worker holds the job until then; past it (the worker died), another takes it over.
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CaseBankEntry(Base):
    """The bank entries a case stands behind, whoever added them. Reversing a case
    disables only the entries it made active (added, or re-enabled after another case's
    reversal), and only when no other standing case holds them."""

    __tablename__ = "case_bank_entries"

    case_id: Mapped[int] = mapped_column(ForeignKey("takedown_cases.id"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id"), primary_key=True)
    activated: Mapped[bool] = mapped_column()


class CaseItem(Base):
    """Content a case stands behind (located, or found already removed), so that
    reversing one case never restores what another standing case had taken down."""

    __tablename__ = "case_items"
    __table_args__ = (Index("ix_case_items_content", "content_id"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("takedown_cases.id"), primary_key=True)
    content_id: Mapped[str] = mapped_column(String(200), primary_key=True)


class AttemptGuard(Base):
    """Guesses at one secret (a case's PIN) from one client: attempts in flight or failed
    since the last success, and the lock they earned. Keyed by the target as typed, so an
    unknown case number locks exactly like a real one; per client, so one client's
    guessing never locks the rightful owner out."""

    __tablename__ = "attempt_guards"

    target: Mapped[str] = mapped_column(String(40), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the address
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locks: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column()


class RateWindow(Base):
    """Requests of one kind from one client in one fixed time window, counted atomically
    in the database so that every replica and every concurrent request sees one count."""

    __tablename__ = "rate_windows"

    scope: Mapped[str] = mapped_column(String(30), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the address
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds // size
    count: Mapped[int] = mapped_column(Integer, default=0)


class User(Base):
    """A person who signs in to the console: moderators, leads, child-safety reviewers,
    compliance, administrators. Only an argon2 hash of the password is kept."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # lower case
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON)
    # Base32 TOTP secret, encrypted with the service's secret key; None: no second factor.
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    password_changed_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UserSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept.
    Sessions end after 30 idle minutes or 12 hours, whichever comes first."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()  # the absolute end
    # When the second factor was given (None while a TOTP code is still owed).
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ReviewItem(Base):
    """Something a person must look at: a held verdict, a refusal made by image analysis
    alone, a CS-1 suspension awaiting confirmation, a takedown case, an appeal, a
    disputed hash match. History is in ``review_events``; the current state is kept here
    too, so queues can be listed and claimed with indexes."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("kind", "subject", name="uq_review_items_subject"),
        Index("ix_review_items_queue", "queue", "status", "priority", "due_at"),
        Index("ix_review_items_claims", "status", "claimed_until"),
        Index("ix_review_items_account", "account_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(30))
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(120))  # check id, case number, appeal id
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clause: Mapped[str | None] = mapped_column(String(10), nullable=True)  # as decided so far
    restricted: Mapped[bool] = mapped_column()  # child safety: CS-1, KM-1, CSAM notices
    has_media: Mapped[bool] = mapped_column()
    priority: Mapped[int] = mapped_column(Integer)  # lower first
    due_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(12))  # open | closed
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # Who may not decide it: whoever made the decision an appeal contests.
    excluded_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"),
                                                         nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)


class ReviewEvent(Base):
    """Append-only history of a review item: created, claimed, released, revealed,
    decided, escalated. Every action a person takes in the console is one of these."""

    __tablename__ = "review_events"
    __table_args__ = (Index("ix_review_events_item", "item_id", "id"),
                      Index("ix_review_events_actor", "actor_id", "kind", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"))
    kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))  # who, readable: user name or system
    at: Mapped[datetime] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Appeal(Base):
    """An affected user's appeal of a restriction (a refused check, a takedown removal and
    the strikes and suspension that came with it). One per restriction, within 14 days;
    the token in the statement of reasons proves standing."""

    __tablename__ = "appeals"
    __table_args__ = (UniqueConstraint("subject_kind", "subject", name="uq_appeals_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(20))  # check | takedown
    subject: Mapped[str] = mapped_column(String(120))  # check id | "<case>:<account>"
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    filed_at: Mapped[datetime] = mapped_column()
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"),
                                                       nullable=True)


class AuditRecord(Base):
    """One link of the tamper-evident record (``consentry.audit``). ``payload`` is the
    canonical JSON that was hashed (seq, time, kind, subject, actor, body); ``hash`` is
    SHA-256 over the previous record's hash and the payload. Never updated or deleted."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_kind", "kind", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last link: one row, locked by each appending transaction so links are
    added one after another."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signature (Ed25519) over the chain's hash at ``seq``: anyone with the public key
    can check that nothing up to ``seq`` was changed since."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


class EvidenceItem(Base):
    """Sealed evidence (``consentry.evidence``): content and metadata encrypted with AES-GCM
    under a data key of their own, which is stored wrapped by a key-encryption key from
    configuration. Purging drops the ciphertext and the wrapped key."""

    __tablename__ = "evidence_items"
    __table_args__ = (Index("ix_evidence_subject", "subject_kind", "subject"),
                      Index("ix_evidence_account", "account_id"),
                      Index("ix_evidence_retain", "purged_at", "retain_until"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(30))  # check | takedown_case | ...
    subject: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)  # which image of the subject
    clause: Mapped[str | None] = mapped_column(String(10), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    retain_until: Mapped[datetime] = mapped_column()
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sealed_metadata: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    content_dropped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(nullable=True)


class EvidenceHold(Base):
    """A legal hold: the items it covers (one item, or everything of an account) are kept
    past their retention until it is lifted."""

    __tablename__ = "evidence_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[datetime] = mapped_column()
    lifted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class EvidenceKey(Base):
    """A key-encryption key the vault has used, by id, with a canary sealed under it: a
    wrong key given for the id is found at start, not at the first report."""

    __tablename__ = "evidence_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column()
    canary: Mapped[bytes] = mapped_column(LargeBinary)


class CyberTipReport(Base):
    """A report to NCMEC's CyberTipline about one account: drafted from sealed CS-1/KM-1
    evidence, sent only after a child-safety reviewer confirms it (``reporting``)."""

    __tablename__ = "cybertip_reports"
    __table_args__ = (Index("ix_cybertip_status", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)  # idempotency at NCMEC's end
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # draft|confirmed|sent|failed
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    confirmed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    classification: Mapped[str | None] = mapped_column(String(4), nullable=True)
    rationale: Mapped[str | None] = mapped_column(Text, nullable=True)
    ncmec_report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    progress: Mapped[str | None] = mapped_column(Text, nullable=True)  # SubmissionProgress
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CyberTipReportItem(Base):
    """A sealed evidence item in a report (each item in one report only)."""

    __tablename__ = "cybertip_report_items"

    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence_items.id"), primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("cybertip_reports.id"), index=True)


class ThreadTurn(Base):
    """One generation check made within a conversation (``thread``: the platform's id for
    a reply chain), kept until ``expires_at`` so the next request in the thread is judged
    with it: its text, its photos' digests and faces, and its verdict."""

    __tablename__ = "thread_turns"
    __table_args__ = (Index("ix_thread_turns_thread", "thread_id", "created_at"),
                      Index("ix_thread_turns_expires", "expires_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[str] = mapped_column(String(200))
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id"))
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    # The request as sent: the context of the next turns, deleted when the turn expires.
    prompt: Mapped[str] = mapped_column(Text)
    image_sha256: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Faces found in the photos ([[x0, y0, x1, y1], age] each) and the highest nudity
    # score: a later reply without the photo is judged against them.
    faces: Mapped[list[Any]] = mapped_column(JSON, default=list)
    nsfw: Mapped[float] = mapped_column(default=0.0)
    decision: Mapped[str] = mapped_column(String(10))
    clause: Mapped[str] = mapped_column(String(10))
    # A near-identical retry of this earlier refused check: flagged, not struck again.
    evasion_of: Mapped[str | None] = mapped_column(String(40), nullable=True)


class PromptBankEntry(Base):
    """A phrasing a reviewer confirmed as abuse, with its clause: requests that mean
    nearly the same (by the semantic layer's encoder) are refused. Disabled entries never
    match; entries are never deleted, so every refusal they made stays explainable."""

    __tablename__ = "prompt_bank_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    clause: Mapped[str] = mapped_column(String(10))
    # The encoder's vector of ``text`` (float32, little-endian) and the encoder it is from.
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    encoder: Mapped[str] = mapped_column(String(80))
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    source_check: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    enabled: Mapped[bool] = mapped_column(default=True)
    changed_at: Mapped[datetime] = mapped_column()
    changed_by: Mapped[str] = mapped_column(String(200))
    change_reason: Mapped[str] = mapped_column(Text, default="")


class LawEnforcementRequest(Base):
    """A preservation or disclosure request from an authority: who asked, on what legal
    basis, for what, by when; the hold it placed and the package disclosed."""

    __tablename__ = "law_enforcement_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # preservation | disclosure
    agency: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str] = mapped_column(String(200))  # the scope: one account's evidence
    deadline: Mapped[datetime | None] = mapped_column(nullable=True)
    received_at: Mapped[datetime] = mapped_column()
    recorded_by: Mapped[str] = mapped_column(String(200))
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("evidence_holds.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # open | disclosed | closed
    package_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disclosed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disclosed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


LAST_RUN_PREFIX = "job:"  # maintenance_runs: a periodic job's last run, by name


class MaintenanceRun(Base):
    """A one-off job that has run to the end (sealing what older versions kept in the
    clear), so it is not run again at every start; and, named ``job:<name>``, the last
    time each periodic job ran to the end (``consentry.jobs.remembered``)."""

    __tablename__ = "maintenance_runs"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    done_at: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer)


class DsaStatement(Base):
    """A DSA statement of reasons (Art. 17) for one restriction, with the fields of the EU
    Transparency Database exactly as submitted (no personal data), and where its
    submission stands. ``puid`` is the platform's unique id for the statement: the
    database refuses a second statement with the same one."""

    __tablename__ = "dsa_statements"
    __table_args__ = (UniqueConstraint("subject_kind", "subject",
                                       name="uq_dsa_statements_subject"),
                      Index("ix_dsa_statements_status", "status", "created_at"))

    puid: Mapped[str] = mapped_column(String(500), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(20))  # check | takedown | strike | ...
    subject: Mapped[str] = mapped_column(String(120))
    # Whose restriction it is: to show it to them; never part of the statement itself.
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    statement: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    database_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RegulatorRequest(Base):
    """An information request from a regulator (Ofcom under OSA s.100, the Commission under
    DSA Art. 67, ...): what is asked, by when, and where the answer stands. Only
    administrators change it; who did, and when, is kept."""

    __tablename__ = "regulator_requests"
    __table_args__ = (Index("ix_regulator_requests_status", "status", "deadline"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    regulator: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(200))
    questions: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column()
    deadline: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(20))  # open | answered | closed
    recorded_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(200))


class RegulatorAttachment(Base):
    """A pack or report produced for a regulator request: its file name and SHA-256 (the
    file itself is handed over, not kept here), its kind and the period it covers."""

    __tablename__ = "regulator_attachments"
    __table_args__ = (Index("ix_regulator_attachments_request", "request_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("regulator_requests.id"))
    file_name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(30))  # incident_pack | transparency_report | other
    period_from: Mapped[datetime | None] = mapped_column(nullable=True)
    period_to: Mapped[datetime | None] = mapped_column(nullable=True)
    attached_at: Mapped[datetime] = mapped_column()
    attached_by: Mapped[str] = mapped_column(String(200))


class LikenessEnrolment(Base):
    """A person's entry in the likeness registry (``consentry.likeness``): their account,
    status and protection settings. Their face embeddings are ``LikenessFace`` rows, each
    sealed in the evidence vault; never the photos."""

    __tablename__ = "likeness_enrolments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # lik_<hex>
    account_id: Mapped[str] = mapped_column(String(200), index=True)
    # The account while the entry is live, NULL once withdrawn: one live entry per account.
    live_account: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(20))  # active | held | withdrawn
    no_edits: Mapped[bool] = mapped_column(default=False)
    photo_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    withdrawn_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LikenessFace(Base):
    """One enrolled face embedding: the vault item that holds it sealed. Its id is the
    key of the face in every replica's vector index."""

    __tablename__ = "likeness_faces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[str] = mapped_column(ForeignKey("likeness_enrolments.id"), index=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence_items.id"))


class LikenessEvent(Base):
    """Append-only log of enrolments, setting changes and withdrawals (audited); also the
    change feed every replica's index replays."""

    __tablename__ = "likeness_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # enrolled|held|changed|withdrawn|cleared|refused
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LikenessAttempt(Base):
    """A refused attempt against a protected likeness by another account: counted to open
    a review item for repeated attempts."""

    __tablename__ = "likeness_attempts"
    __table_args__ = (Index("ix_likeness_attempts_enrolment", "enrolment_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[str] = mapped_column(String(40))
    check_id: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    at: Mapped[datetime] = mapped_column()
