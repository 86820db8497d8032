"""How review items are shown: SLA countdowns, the prompt with its matched spans marked,
the face boxes a verdict reported, labels for kinds and queues. Pure; the console's
review pages (``console_review``) render these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from consentry.signals.preview import FaceBox

KIND_LABELS: Final = {
    "review_verdict": "Held request",
    "image_refusal": "Refusal by image analysis",
    "cs1_confirmation": "CS-1 suspension to confirm",
    "takedown_case": "Takedown case",
    "csam_notice": "Notice of child sexual abuse material",
    "appeal": "Appeal",
    "hash_dispute": "Disputed hash match",
    "likeness_duplicate": "Face enrolled under another account",
    "likeness_attempts": "Repeated attempts against a protected likeness",
}
QUEUE_LABELS: Final = {
    "takedowns": "Takedown cases",
    "child_safety": "Child safety (restricted)",
    "gate_review": "Held requests",
    "image_refusals": "Refusals by image analysis",
    "appeals": "Appeals",
    "hash_disputes": "Hash-match disputes",
    "leads": "Escalated to leads",
}
# What "uphold" and "overturn" mean for each kind, in the words a reviewer would use.
DECISION_LABELS: Final = {
    "review_verdict": ("Refuse the request", "Allow the request"),
    "image_refusal": ("Confirm the refusal", "Overturn: restore the content"),
    "cs1_confirmation": ("Confirm: permanent suspension", "Lift the suspension"),
    "takedown_case": ("Remove the content", "Reject the request, restoring anything removed"),
    "csam_notice": ("Confirmed: child sexual abuse material", "Not child sexual abuse material"),
    "appeal": ("Deny the appeal", "Grant the appeal: reverse everything"),
    "hash_dispute": ("The match stands", "False match: allow this image"),
    "likeness_duplicate": ("Refuse: the enrolment on record stands",
                           "Same person: withdraw the earlier enrolment"),
    "likeness_attempts": ("Pattern of abuse: refer the accounts", "No pattern: dismiss"),
}


def duration(seconds: float) -> str:
    """``3 h 12 min``, ``45 min``, ``36 h 5 min``, ``3 d 4 h`` (days from two on): short
    enough for a table cell."""
    minutes = int(abs(seconds) // 60)
    hours, mins = minutes // 60, minutes % 60
    if hours >= 48:
        return f"{hours // 24} d {hours % 24} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


@dataclass(frozen=True)
class Countdown:
    due_at: datetime
    seconds_left: float

    @property
    def overdue(self) -> bool:
        return self.seconds_left < 0

    @property
    def urgent(self) -> bool:  # under two hours left
        return 0 <= self.seconds_left < 7200

    @property
    def text(self) -> str:
        if self.overdue:
            return f"overdue by {duration(self.seconds_left)}"
        return f"due in {duration(self.seconds_left)}"


def countdown(due_at: datetime, now: datetime) -> Countdown:
    return Countdown(due_at, (due_at - now).total_seconds())


@dataclass(frozen=True)
class Segment:
    text: str
    why: str | None = None  # set on a matched span: what it matched


def highlighted(prompt: str, reasons: list[dict[str, Any]]) -> list[Segment]:
    """The prompt cut into plain and matched stretches, for ``<mark>``. Spans that
    overlap are merged; a span whose offsets no longer fit the stored prompt is found
    by its text instead."""
    marks: list[tuple[int, int, str]] = []
    for reason in reasons:
        span = reason.get("span")
        if not isinstance(span, dict):
            continue
        start, end, text = span.get("start"), span.get("end"), str(span.get("text", ""))
        # Stored verdicts keep offsets only (``evidence.fields.without_quotes``).
        if not (isinstance(start, int) and isinstance(end, int)
                and (prompt[start:end] == text or (not text and end <= len(prompt)))):
            start = prompt.find(text) if text else -1
            end = start + len(text)
        if start >= 0 and end > start:
            marks.append((start, end, str(reason.get("detail") or reason.get("code"))))
    out: list[Segment] = []
    at = 0
    for start, end, why in sorted(marks):
        if start < at:  # overlaps the previous mark: extend it
            if end > at and out:
                last = out.pop()
                out.append(Segment(last.text + prompt[at:end], last.why))
                at = end
            continue
        if start > at:
            out.append(Segment(prompt[at:start]))
        out.append(Segment(prompt[start:end], why))
        at = end
    if at < len(prompt):
        out.append(Segment(prompt[at:]))
    return out


def faces_of(reasons: list[dict[str, Any]], image: int) -> list[FaceBox]:
    """The faces a verdict reported on image ``image``, each once."""
    seen: dict[tuple[int, ...], FaceBox] = {}
    for reason in reasons:
        box = reason.get("face_box")
        if reason.get("image", 0) != image or not isinstance(box, list) or len(box) != 4:
            continue
        key = tuple(int(v) for v in box)
        age = reason.get("estimated_age")
        seen.setdefault(key, FaceBox((key[0], key[1], key[2], key[3]),
                                     int(age) if isinstance(age, int) else None))
    return list(seen.values())


def bank_matches(reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in reasons if r.get("code") == "hash_match"]
