"""SQLAlchemy models. Schema changes go through Alembic (store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_checks_idempotency"),
        Index("ix_checks_account_created", "account_id", "created_at"),
        Index("ix_checks_decision_created", "decision", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # generation | output | upload
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
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
    verdict: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column()


class CheckMedia(Base):
    """Image bytes of a refused or held request, kept as evidence. Allowed requests keep
    none."""

    __tablename__ = "check_media"

    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


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


class ApiKey(Base):
    """A service credential. Only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
