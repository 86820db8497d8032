"""Keeps a statement of reasons for every restriction, in the restriction's own
transaction: one session hook, like the audit chain's, so no code path that refuses,
removes, strikes or suspends can forget it.

What yields a statement (``puid`` in brackets; unique within one database):

- a refused check: a new ``checks`` row whose decision is ``block`` under a clause the
  database knows (``vocabulary.CLAUSES``; FC-1 and EN-1 restrict nothing new) [check id];
- a held request a reviewer refused: the review's ``decided`` event upholding it (with or
  without a strike: an account-less request, or a clause that strikes nothing) [check id];
- a takedown removal: the strike its case gives each uploader [``<case>-S<strike id>``];
  the strike itself is part of the decision it came with (the database has no strike
  value), so a check's or a removal's statement says it was recorded;
- a suspension [``sus-<id>``], and its confirmation by a child-safety reviewer, which makes
  it permanent [``sus-<id>-confirmed``].

Statements are queued (status ``queued``) for ``submitter``.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from consentry.reporting.statements import vocabulary as v
from consentry.reporting.statements.builder import Restriction, build, check_facts
from consentry.store.models import (
    CheckRecord,
    DsaStatement,
    ReviewEvent,
    ReviewItem,
    Strike,
    Suspension,
    TakedownCase,
)

_FOUND: Final = "consentry.statements.found"
_LAW: Final = {"take_it_down": "the US TAKE IT DOWN Act",
               "uk_intimate_image": "the UK intimate image content report procedure",
               "dsa_art16": "Article 16 of the Digital Services Act"}


def statement_for_check(check: CheckRecord, *, automated: bool = True,
                        clause: str | None = None) -> Restriction | None:
    """The statement of a refused check (None: it restricted nothing statable)."""
    clause = clause or check.clause
    if clause not in v.CLAUSES:
        return None
    verdict: dict[str, Any] = check.verdict or {}
    codes = [str(r.get("code")) for r in verdict.get("reasons", []) if r.get("code")]
    weight = int((verdict.get("enforcement") or {}).get("strike_weight") or 0)
    images = len(check.image_sha256 or []) if check.kind == "generation" else 0
    return Restriction(
        puid=check.id, surface=check.kind, clause=clause,
        policy_version=check.policy_version, decided_at=check.created_at,
        content_at=check.created_at, automated=automated, with_images=bool(images),
        facts=check_facts(check.kind, clause, codes if automated else [],
                          automated=automated, strike_weight=weight, images=images))


def statement_for_takedown(strike: Strike, regime: str, policy_version: str) -> Restriction:
    law = _LAW.get(regime, "a legal notice")
    return Restriction(
        puid=f"{strike.takedown_case}-S{strike.id}", surface="takedown",
        clause=strike.clause, policy_version=policy_version, decided_at=strike.created_at,
        detected_automatically=False,
        source_type=v.SOURCE_ARTICLE_16 if regime == "dsa_art16"
        else v.SOURCE_OTHER_NOTIFICATION,
        facts=(f"A notice under {law} (case {strike.takedown_case}) reported an intimate "
               "image shared without the consent of the person shown. Content matching "
               f"the reported image was removed under policy clause {strike.clause}, and a "
               f"strike of weight {strike.weight} was recorded on the account."))


def statement_for_suspension(row: Suspension, policy_version: str, *,
                             confirmed: bool = False) -> Restriction | None:
    if row.clause not in v.CLAUSES:
        return None
    if confirmed:
        return Restriction(
            puid=f"sus-{row.id}-confirmed", surface="account", clause=row.clause,
            policy_version=policy_version, decided_at=row.starts_at, automated=False,
            account_decision=v.ACCOUNT_TERMINATED,
            facts=(f"A child-safety reviewer confirmed the suspension under policy clause "
                   f"{row.clause}: the account is closed permanently."))
    permanent = row.ends_at is None and not row.pending_review
    if row.pending_review:
        why = (f"The account was suspended at once under policy clause {row.clause}, until "
               "a child-safety reviewer confirms or lifts the suspension.")
    elif row.reason.startswith(f"{row.clause}:"):
        why = f"The account was closed under policy clause {row.clause}."
    else:  # a strike threshold: "3 active strikes (latest under II-1)"
        why = f"The account was suspended on reaching {row.reason}."
    return Restriction(
        puid=f"sus-{row.id}", surface="account", clause=row.clause,
        policy_version=policy_version, decided_at=row.starts_at,
        account_decision=v.ACCOUNT_TERMINATED if permanent else v.ACCOUNT_SUSPENDED,
        account_until=row.ends_at, facts=why)


def _collect(session: Session, _context: Any) -> None:
    """After a flush (ids assigned, history still readable): what restricted."""
    found: list[tuple[str, Any]] = []
    for obj in session.new:
        if isinstance(obj, CheckRecord) and obj.decision == "block":
            found.append(("check", obj))
        elif isinstance(obj, Strike) and obj.takedown_case:
            found.append(("strike", obj))
        elif (isinstance(obj, ReviewEvent) and obj.kind == "decided"
              and (obj.details or {}).get("decision") == "uphold"):
            found.append(("upheld", obj))
        elif isinstance(obj, Suspension):
            found.append(("suspension", obj))
    for obj in session.dirty:
        if isinstance(obj, Suspension) and obj.lifted_at is None and not obj.pending_review:
            history = inspect(obj).attrs.pending_review.history
            if history.deleted and history.deleted[0]:
                found.append(("confirmed", obj))
    if found:
        session.info.setdefault(_FOUND, []).extend(found)


def _keep(session: Session, _context: Any) -> None:
    """After the flush: the statements, added to the same transaction."""
    found = session.info.pop(_FOUND, None)
    if not found:
        return
    with session.no_autoflush:
        for kind, obj in found:
            made = _statement(session, kind, obj)
            if made is None:
                continue
            subject_kind, subject, restriction, account = made
            if session.get(DsaStatement, restriction.puid) is not None:
                continue  # kept already: idempotent by puid
            session.add(DsaStatement(
                puid=restriction.puid, subject_kind=subject_kind, subject=subject,
                account_id=account, created_at=restriction.decided_at,
                statement=build(restriction), status="queued", attempts=0))


Made = tuple[str, str, Restriction, str | None]  # subject kind, subject, statement, account


def _statement(session: Session, kind: str, obj: Any) -> Made | None:
    if kind == "check":
        r = statement_for_check(obj)
        return ("check", obj.id, r, obj.account_id) if r else None
    if kind == "upheld":
        return _upheld(session, obj)
    version = _policy_version(session, obj)
    if kind == "suspension" or kind == "confirmed":
        r = statement_for_suspension(obj, version, confirmed=kind == "confirmed")
        subject = f"{obj.id}:confirmed" if kind == "confirmed" else str(obj.id)
        return ("suspension", subject, r, obj.account_id) if r else None
    strike: Strike = obj
    regime = session.scalar(select(TakedownCase.regime).where(
        TakedownCase.number == strike.takedown_case)) or ""
    return ("takedown", f"{strike.takedown_case}:{strike.id}",
            statement_for_takedown(strike, regime, version), strike.account_id)


def _upheld(session: Session, event: ReviewEvent) -> Made | None:
    """A reviewer refused a held request (a refusal the gate made has its own)."""
    item = session.get(ReviewItem, event.item_id)
    if item is None or item.kind != "review_verdict":
        return None
    check = session.get(CheckRecord, item.subject)
    if check is None or check.decision == "block":
        return None
    r = statement_for_check(check, automated=False,
                            clause=str((event.details or {}).get("clause") or check.clause))
    return ("check", check.id, r, check.account_id) if r else None


def _policy_version(session: Session, obj: Any) -> str:
    """The policy version in force: that of the check behind the row, else the latest."""
    check_id = getattr(obj, "check_id", None)
    if check_id:
        version = session.scalar(select(CheckRecord.policy_version).where(
            CheckRecord.id == check_id))
        if version:
            return str(version)
    return _policy["version"]


_lock = threading.Lock()
_installed = False
_policy = {"version": "1"}


def install(policy_version: str | None = None) -> None:
    """Hook statement keeping into every session (once per process; idempotent).
    ``policy_version``: the policy in force, named in statements of restrictions that
    no check carries the version of (removals and their suspensions)."""
    global _installed
    if policy_version:
        _policy["version"] = policy_version
    if _installed:
        return
    with _lock:
        if not _installed:
            event.listen(Session, "after_flush", _collect)
            event.listen(Session, "after_flush_postexec", _keep)
            _installed = True
