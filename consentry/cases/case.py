"""A takedown case: its number and PIN, its deadline and its status, derived from its
append-only events (the model Bluesky's Ozone uses). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from consentry.cases.intake import Missing

# The legal clock: TAKE IT DOWN Act and the UK report both give 48 hours from receipt.
REMOVAL_DEADLINE: Final = timedelta(hours=48)
AT_RISK_WITHIN: Final = timedelta(hours=6)
APPEAL_DAYS: Final = 14

# Case numbers are random, not sequential, so that knowing one says nothing about
# another; Crockford's alphabet has no look-alike characters (0/O, 1/I/L).
_NUMBER_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NUMBER_CHARS: Final = 10  # 50 bits
PIN_DIGITS: Final = 8


class CaseStatus(StrEnum):
    RECEIVED = "received"  # complete; content being located
    INCOMPLETE = "incomplete"  # the requester has been told what is missing
    LOCATED = "located"  # content found; removal callbacks under way
    REMOVED = "removed"  # every located item removed
    REJECTED = "rejected"  # refused, with reasons
    APPEALED = "appealed"  # the requester contests a rejection
    REVERSED = "reversed"  # a moderator restored the removed content


class EventKind(StrEnum):
    RECEIVED = "received"
    INCOMPLETE = "incomplete"
    AMENDED = "amended"
    DUPLICATE_MERGED = "duplicate_merged"
    LOCATED = "located"
    # Named content another case (or the platform) had already taken down: nothing to
    # remove, no strike; it counts as down for the requester.
    ALREADY_REMOVED = "already_removed"
    NOT_FOUND = "not_found"
    BANKED = "banked"
    REMOVAL_REQUESTED = "removal_requested"
    ITEM_REMOVED = "item_removed"
    REMOVAL_FAILED = "removal_failed"
    STRUCK = "struck"
    NOTIFIED = "notified"
    CLOSED = "closed"
    REJECTED = "rejected"
    APPEALED = "appealed"
    REVERSED = "reversed"
    ITEM_RESTORED = "item_restored"
    PROCESSING_FAILED = "processing_failed"  # an error after intake; a case worker retries
    # Reported as child sexual abuse material: removed like any case, and also owed a
    # human review and a report to the authorities (NCMEC/IWF), whatever its status.
    ESCALATED = "escalated"
    # A child-safety reviewer's finding on an escalated notice (details: confirmed).
    ESCALATION_REVIEWED = "escalation_reviewed"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: datetime
    actor: str
    automated: bool = True
    details: dict[str, Any] = field(default_factory=dict)


# Events that move the status; the rest only add detail.
_STATUS_OF: Final[dict[EventKind, CaseStatus]] = {
    EventKind.RECEIVED: CaseStatus.RECEIVED,
    EventKind.INCOMPLETE: CaseStatus.INCOMPLETE,
    EventKind.LOCATED: CaseStatus.LOCATED,
    EventKind.CLOSED: CaseStatus.REMOVED,
    EventKind.REJECTED: CaseStatus.REJECTED,
    EventKind.APPEALED: CaseStatus.APPEALED,
    EventKind.REVERSED: CaseStatus.REVERSED,
}
CLOSED_STATUSES: Final = frozenset({CaseStatus.REMOVED, CaseStatus.REJECTED,
                                    CaseStatus.REVERSED})


def derive_status(events: Sequence[Event]) -> CaseStatus:
    """The case's status is that of the latest status-moving event."""
    status = CaseStatus.RECEIVED
    for event in events:
        status = _STATUS_OF.get(event.kind, status)
    return status


def removed_at(events: Sequence[Event]) -> datetime | None:
    """When the case was closed with its content removed (for the SLA)."""
    closed = [e.at for e in events if e.kind is EventKind.CLOSED]
    return closed[-1] if closed else None


@dataclass(frozen=True)
class LocatedItem:
    content_id: str
    account_id: str | None
    distance: int
    identified: bool  # named in the request (rather than found as a copy)


@dataclass(frozen=True)
class CaseView:
    number: str
    regime: str
    status: CaseStatus
    received_at: datetime
    deadline_at: datetime
    removed_at: datetime | None
    merged_into: str | None
    missing: tuple[Missing, ...]
    located: tuple[LocatedItem, ...]
    removed: tuple[str, ...]  # confirmed gone after this case's callback
    failed: tuple[str, ...]
    unknown: tuple[str, ...]  # content ids / URLs the request named that we do not hold
    already_removed: tuple[str, ...] = ()  # named, but down before this case acted
    # Removed because of this case (the platform took it down on our callback, rather than
    # answering that it was already gone): what the case strikes for and a reversal
    # restores.
    removed_here: tuple[str, ...] = ()
    events: tuple[Event, ...] = field(repr=False, default=())

    @property
    def escalated(self) -> bool:
        return any(e.kind is EventKind.ESCALATED for e in self.events)

    @property
    def time_to_removal(self) -> timedelta | None:
        return self.removed_at - self.received_at if self.removed_at else None

    def public(self) -> dict[str, Any]:
        """What the requester's status page shows: no uploader, no content ids, and never
        another requester's case number (a merged duplicate shows its own)."""
        return {
            "case": self.number, "regime": self.regime, "status": self.status.value,
            "received_at": self.received_at.isoformat(),
            "deadline": self.deadline_at.isoformat(),
            "removed_at": self.removed_at.isoformat() if self.removed_at else None,
            "missing": [{"field": m.field, "why": m.why} for m in self.missing],
            "items_found": len(self.located) + len(self.already_removed),
            "items_removed": len(self.removed) + len(self.already_removed),
            "already_removed": len(self.already_removed),
            "copies_found": sum(1 for i in self.located if not i.identified),
            "not_found": list(self.unknown),
        }

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The moderator's view: everything, history included."""
        out = self.public()
        out.update({
            "merged_into": self.merged_into,
            "already_removed_ids": list(self.already_removed),
            "removed_here": list(self.removed_here),
            "escalated": self.escalated,
            "located": [asdict(i) for i in self.located], "removed": list(self.removed),
            "failed": list(self.failed),
            "time_to_removal_s": (self.time_to_removal.total_seconds()
                                  if self.time_to_removal is not None else None),
            "events": [{"kind": e.kind.value, "at": e.at.isoformat(), "actor": e.actor,
                        "automated": e.automated, "details": e.details} for e in self.events],
        })
        if now is not None and self.status not in CLOSED_STATUSES:
            out["due"] = due_state(self.deadline_at, now).value
            out["time_left_s"] = (self.deadline_at - now).total_seconds()
        return out


def fold_case(number: str, regime: str, received_at: datetime, deadline_at: datetime,
              merged_into: str | None, events: Sequence[Event]) -> CaseView:
    """The case as its events say it stands."""
    missing: tuple[Missing, ...] = ()
    located: dict[str, LocatedItem] = {}
    removed: dict[str, None] = {}
    here: dict[str, None] = {}
    failed: dict[str, None] = {}
    unknown: list[str] = []
    already: dict[str, None] = {}
    for e in events:
        if e.kind is EventKind.INCOMPLETE:
            missing = tuple(Missing(**m) for m in e.details["missing"])
        elif e.kind is EventKind.RECEIVED:
            missing = ()
        elif e.kind is EventKind.LOCATED:
            for item in e.details["items"]:
                located.setdefault(item["content_id"], LocatedItem(**item))
        elif e.kind is EventKind.ALREADY_REMOVED:
            already.update(dict.fromkeys(e.details["content_ids"]))
        elif e.kind is EventKind.ITEM_REMOVED:
            removed[e.details["content_id"]] = None
            if e.details.get("outcome", "ok") == "ok":
                here[e.details["content_id"]] = None
            failed.pop(e.details["content_id"], None)
        elif e.kind is EventKind.ITEM_RESTORED:
            removed.pop(e.details["content_id"], None)
            here.pop(e.details["content_id"], None)
        elif e.kind is EventKind.REMOVAL_FAILED and e.details.get("action") == "remove":
            failed[e.details["content_id"]] = None
        elif e.kind is EventKind.NOT_FOUND:
            unknown += [u for u in e.details["unknown"] if u not in unknown]
    return CaseView(number, regime, derive_status(events), received_at,
                    deadline_at, removed_at(events), merged_into, missing,
                    tuple(located.values()), tuple(removed), tuple(failed),
                    tuple(unknown), tuple(already), tuple(here), tuple(events))


class Due(StrEnum):
    OVERDUE = "overdue"
    AT_RISK = "at_risk"  # less than 6 hours left
    OPEN = "open"  # every open case, whatever its deadline


def due_state(deadline: datetime, now: datetime) -> Due:
    if now >= deadline:
        return Due.OVERDUE
    if deadline - now < AT_RISK_WITHIN:
        return Due.AT_RISK
    return Due.OPEN


def new_case_number() -> str:
    return "TD-" + "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(_NUMBER_CHARS))


def normalise_case_number(text: str) -> str:
    """Accept what people type: any case, spaces, and look-alike letters."""
    cleaned = "".join(text.upper().split()).translate(str.maketrans("OIL", "011"))
    return cleaned if cleaned.startswith("TD-") else "TD-" + cleaned.removeprefix("TD")


def well_formed_case_number(number: str) -> bool:
    """Whether a (normalised) case number could have been issued at all."""
    return (len(number) == 3 + _NUMBER_CHARS and number.startswith("TD-")
            and all(c in _NUMBER_ALPHABET for c in number[3:]))


def new_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))


# scrypt: a leaked table must not give the PINs back (8 digits would fall to plain
# SHA-256 in a second).
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1}


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(candidate, bytes.fromhex(digest))
