"""Conversation memory: the recent turns of a thread, kept until they expire."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from consentry.store.models import ThreadTurn

RECENT_TURNS = 8  # the most a request is judged with


@dataclass(frozen=True)
class Turn:
    """An earlier request of the thread, as remembered."""

    check_id: str
    account: str | None
    created_at: datetime
    prompt: str
    image_sha256: tuple[str, ...]
    faces: tuple[tuple[tuple[int, int, int, int], int], ...]  # (box, estimated age)
    nsfw: float
    decision: str
    clause: str


def recent_turns(session: Session, thread_id: str, now: datetime,
                 limit: int = RECENT_TURNS) -> list[Turn]:
    """The latest unexpired turns of ``thread_id``, oldest first."""
    rows = session.scalars(
        select(ThreadTurn)
        .where(ThreadTurn.thread_id == thread_id, ThreadTurn.expires_at > now)
        .order_by(ThreadTurn.created_at.desc(), ThreadTurn.id.desc())
        .limit(limit)
    ).all()
    return [
        Turn(check_id=r.check_id, account=r.account_id, created_at=r.created_at,
             prompt=r.prompt, image_sha256=tuple(r.image_sha256),
             faces=tuple((tuple(box), int(age)) for box, age in r.faces),
             nsfw=r.nsfw, decision=r.decision, clause=r.clause)
        for r in reversed(rows)
    ]


def remember_turn(
    session: Session,
    *,
    thread_id: str,
    check_id: str,
    account: str | None,
    now: datetime,
    ttl: timedelta,
    prompt: str,
    image_sha256: Sequence[str],
    faces: Sequence[tuple[tuple[int, int, int, int], int]],
    nsfw: float,
    decision: str,
    clause: str,
    evasion_of: str | None,
) -> None:
    """Keep one turn of ``thread_id`` until ``now + ttl``; forget the thread's expired
    turns on the way."""
    session.execute(delete(ThreadTurn).where(ThreadTurn.thread_id == thread_id,
                                             ThreadTurn.expires_at <= now))
    session.add(ThreadTurn(
        thread_id=thread_id, check_id=check_id, account_id=account, created_at=now,
        expires_at=now + ttl, prompt=prompt, image_sha256=list(image_sha256),
        faces=[[list(box), age] for box, age in faces], nsfw=nsfw, decision=decision,
        clause=clause, evasion_of=evasion_of))


def purge_expired_turns(session: Session, now: datetime) -> int:
    """Forget every expired turn of every thread; returns how many."""
    result = session.execute(delete(ThreadTurn).where(ThreadTurn.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
