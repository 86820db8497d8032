"""A known history for the reports' tests: checks, bank matches, takedown cases, review
items, appeals, strikes, suspensions, CyberTipline reports and DSA statements, inside and
around a period, written straight to the store. It keeps its own list of what it wrote,
from which the tests compute every expected figure in plain Python, and the personal
data it planted (account ids, emails, IP addresses) that no report may contain."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from consentry.audit import chain
from consentry.reporting import statements
from consentry.store import Database
from consentry.store.models import (
    Account,
    Appeal,
    Bank,
    BankEntry,
    CaseEvent,
    CheckRecord,
    CyberTipReport,
    DsaStatement,
    Notification,
    ReviewItem,
    Strike,
    Suspension,
    TakedownCase,
)

# The period holds the present: audit links are stamped when they are written, so the
# links of this history fall in it as a live service's would.
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
END = START + timedelta(days=2)
CLAUSES = ("II-1", "II-2", "II-3", "CS-1", "SX-1")
LANGUAGES = ("en", "es", "id", "ja")
REGIMES = ("take_it_down", "uk_intimate_image", "dsa_notice")
QUEUES = ("gate_review", "image_refusal", "appeal")


@dataclass
class History:
    checks: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)
    strikes: list[dict[str, Any]] = field(default_factory=list)
    suspensions: list[dict[str, Any]] = field(default_factory=list)
    cybertips: list[dict[str, Any]] = field(default_factory=list)
    statements: list[dict[str, Any]] = field(default_factory=list)
    banks: dict[int, tuple[str, str]] = field(default_factory=dict)  # entry -> (bank, source)
    personal: set[str] = field(default_factory=set)
    mid: datetime | None = None

    @staticmethod
    def inside(at: datetime) -> bool:
        return START <= at < END


def _when(rng: random.Random) -> datetime:
    """Mostly inside the period, some just outside either end, some on its edges."""
    roll = rng.random()
    if roll < 0.05:
        return START
    if roll < 0.08:
        return END
    if roll < 0.15:
        return START - timedelta(seconds=rng.randint(1, 86_400))
    if roll < 0.22:
        return END + timedelta(seconds=rng.randint(0, 86_400))
    return START + timedelta(seconds=rng.randint(0, int((END - START).total_seconds()) - 1))


def build_history(db: Database, *, seed: int = 7, checks: int = 300) -> History:
    chain.install()  # the checks and events become links, as the services make them
    statements.install("test")  # and restrictions keep their statements of reasons
    rng = random.Random(seed)
    h = History()
    accounts = [f"acct-q{i:03d}" for i in range(25)]
    emails = [f"person{i}@mail-example.org" for i in range(10)]
    ips = [f"203.0.113.{i}" for i in range(1, 11)]
    h.personal.update(accounts + emails + ips)
    with db.transaction() as s:
        for a in accounts:
            s.add(Account(id=a, created_at=START - timedelta(days=30)))
        banks = [Bank(name=name, kind="block", category=cat, clause=clause,
                      created_at=START - timedelta(days=9))
                 for name, cat, clause in (("victims", "ncii", "II-3"),
                                           ("ncmec-list", "csam", "KM-1"))]
        s.add_all(banks)
        s.flush()
        entries = []
        for i in range(6):
            bank = banks[i % 2]
            source = ("stopncii", "manual", "ncmec")[i % 3]
            entry = BankEntry(bank_id=bank.id, source=source, md5=f"{i:032x}",
                              pdq=f"{i:064x}", added_at=START - timedelta(days=5))
            s.add(entry)
            s.flush()
            entries.append((entry.id, bank.name, source))
            h.banks[entry.id] = (bank.name, source)
    with db.transaction() as s:
        for i in range(checks):
            kind = rng.choice(("generation", "upload", "output"))
            decision = rng.choices(("allow", "block", "review"), (5, 4, 1))[0]
            clause = "OK-1" if decision == "allow" else rng.choice(CLAUSES)
            account = rng.choice(accounts)
            email, ip = rng.choice(emails), rng.choice(ips)
            reasons: list[dict[str, Any]] = []
            language = "none"
            matched: tuple[str, str] | None = None
            if kind == "upload" and decision == "block" and rng.random() < 0.6:
                entry_id, bank_name, source = rng.choice(entries)
                reasons = [{"code": "hash_match", "detail": f"matches entry {entry_id}",
                            "bank": bank_name, "entry": entry_id, "distance": 4},
                           {"code": "hash_match", "detail": "second", "bank": "victims",
                            "entry": entries[0][0], "distance": 9}]
                matched = (bank_name, source)
            elif kind == "generation" and decision != "allow":
                language = rng.choice(LANGUAGES)
                span = {"start": 0, "end": 6, "text": f"bikini {email}", "language": language}
                found = {"code": "sexualising_request", "detail": f"'{email}' matched",
                         "span": span}
                if rng.random() < 0.5:  # a reason without a span first
                    reasons = [{"code": "real_person_in_photo", "detail": "a face",
                                "face_box": [1, 2, 3, 4], "estimated_age": 31}, found]
                else:
                    reasons = [found]
            elif decision != "allow":
                reasons = [{"code": "intimate_input_image", "detail": "nudity", "score": 0.9}]
            at = _when(rng)
            check_id = f"chk-{i:05d}"
            s.add(CheckRecord(
                id=check_id, kind=kind, account_id=account, content_id=f"post-{i}",
                created_at=at, decision=decision, category="intimate_image_abuse",
                clause=clause, policy_version="1.0", prompt=f"put {email} from {ip} in a bikini",
                image_sha256=[], verdict={"id": check_id, "kind": kind, "reasons": reasons,
                                          "account": {"id": account}, "automated": True,
                                          "explanation": f"refused for {account} at {ip}"},
                latency_ms=3.0))
            h.checks.append({"kind": kind, "decision": decision, "clause": clause,
                             "language": language, "at": at, "matched": matched})
    with db.transaction() as s:
        for i in range(60):
            received = _when(rng)
            regime = rng.choice(REGIMES)
            merged = "TD-MERGED" if rng.random() < 0.1 else None
            roll = rng.random()
            removal = (None if roll < 0.2 else timedelta(hours=48) if roll < 0.3
                       else timedelta(seconds=rng.randint(600, 80 * 3600)))
            case = TakedownCase(number=f"TD-{i:010d}", pin_hash="x", regime=regime,
                                channel="web", received_at=received,
                                deadline_at=received + timedelta(hours=48),
                                submission={"email": rng.choice(emails), "ip": rng.choice(ips)},
                                merged_into=merged,
                                closed_at=received + removal if removal else None)
            s.add(case)
            s.flush()
            s.add(CaseEvent(case_id=case.id, kind="received", at=received, actor="web",
                            details={"ip": rng.choice(ips)}))
            if removal is not None:
                # an earlier closing, reopened on appeal: the last closing counts
                s.add(CaseEvent(case_id=case.id, kind="closed", at=received + removal / 2,
                                actor="system"))
                s.add(CaseEvent(case_id=case.id, kind="closed", at=received + removal,
                                actor="system"))
            s.add(Notification(case_id=case.id, kind="received", recipient=rng.choice(emails),
                               subject="Your request", body="We received it.", channel="email",
                               delivered=True, at=received))
            h.cases.append({"regime": regime, "received": received, "merged": merged,
                            "removal": removal})
        for i in range(80):
            created = _when(rng)
            queue = rng.choice(QUEUES)
            decided = rng.random() < 0.7
            handling = timedelta(seconds=rng.randint(60, 40 * 3600)) if decided else None
            outcome = rng.choice(("uphold", "overturn", "escalate")) if decided else None
            item = ReviewItem(queue=queue, kind=f"k{i}", subject=f"s{i}",
                              account_id=rng.choice(accounts), clause=rng.choice(CLAUSES),
                              restricted=False, has_media=False, priority=1,
                              due_at=created + timedelta(hours=24),
                              status="closed" if decided else "open", created_at=created,
                              closed_at=created + handling if handling else None,
                              outcome=outcome)
            s.add(item)
            s.flush()
            h.reviews.append({"queue": queue, "created": created, "handling": handling})
            if queue == "appeal":
                filed = _when(rng)
                s.add(Appeal(subject_kind="check", subject=f"chk-{i:05d}",
                             account_id=item.account_id, reason="It was me.",
                             contact=rng.choice(emails), filed_at=filed,
                             review_item_id=item.id))
                h.appeals.append({"clause": item.clause, "filed": filed,
                                  "decided": outcome in ("uphold", "overturn"),
                                  "overturned": outcome == "overturn"})
        for _ in range(50):
            at, account, clause = _when(rng), rng.choice(accounts), rng.choice(CLAUSES)
            s.add(Strike(account_id=account, clause=clause, weight=1, created_at=at,
                         expires_at=at + timedelta(days=180)))
            h.strikes.append({"account": account, "clause": clause, "at": at})
        for _ in range(30):
            at, account, clause = _when(rng), rng.choice(accounts), rng.choice(CLAUSES)
            permanent = rng.random() < 0.4
            s.add(Suspension(account_id=account, clause=clause, reason="strikes", starts_at=at,
                             ends_at=None if permanent else at + timedelta(days=7)))
            h.suspensions.append({"account": account, "clause": clause, "at": at,
                                  "permanent": permanent})
        for i in range(12):
            at, status = _when(rng), rng.choice(("sent", "draft", "confirmed"))
            s.add(CyberTipReport(key=f"k{i}", account_id=rng.choice(accounts), status=status,
                                 created_at=at - timedelta(hours=1), updated_at=at))
            h.cybertips.append({"status": status, "at": at})
        # Statements of reasons are kept by the restrictions themselves (the recorder's
        # hook, installed as the service does): their submission is what is made up here.
        s.flush()
        for row in s.scalars(select(DsaStatement).order_by(DsaStatement.puid)):
            at, status = _when(rng), rng.choice(("sent", "queued", "failed"))
            row.status, row.sent_at = status, at if status == "sent" else None
            h.statements.append({"status": status, "at": at})
        assert h.statements, "no restriction of the history kept a statement"
    return h
