"""Judging a request with its conversation: the earlier turns of the same thread.

Pure: the turns come in, a ruling goes out. The rules, in order:

1. A reply with no photo in a thread that showed a real person is judged against that
   photo's faces (the reply "now remove her top" is about the person above).
2. After a refusal in the thread, a request that only makes sense as "go on" ("more",
   "again", "the rest") is refused under the same clause, citing the refusal.
3. A request that is harmless alone but, read with the turns before it, asks for what the
   policy refuses ("take her jacket off" ... "and the shirt") is refused under the clause
   the chain as a whole meets, citing the earlier turns by verdict id.
4. A refusal that repeats an earlier refusal of the same account in the thread (the same
   photo, nearly the same words) is flagged as evasion: it counts as one attempt for
   strikes, not a new one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from consentry.policy import Reason, ReasonCode, Ruling
from consentry.policy.document import Decision
from consentry.signals.findings import FaceFinding, ImageFindings, PromptFindings
from consentry.store.threads import Turn

# Clauses a refusal in the thread carries over to "more" / "again".
SEXUALISING_CLAUSES = frozenset({"CS-1", "II-1", "II-2", "II-3", "SX-1", "RV-1"})
CHAIN_TURNS = 3  # at most this many earlier turns are read together with a request
_RANK = {"allow": 0, "review": 1, "block": 2}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ThreadJudgement:
    ruling: Ruling
    evasion_of: str | None = None  # the refused check this one repeats


# (prompt, images) -> (ruling, prompt findings): the lexicons and the policy.
Judge = Callable[[str, Sequence[ImageFindings]], tuple[Ruling, PromptFindings]]


def thread_photo(turns: Sequence[Turn]) -> tuple[Turn, ImageFindings] | None:
    """The latest turn whose photo showed a person, with its faces as image findings."""
    for t in reversed(turns):
        if t.faces:
            faces = tuple(FaceFinding(box=box, age=age, age_confidence=0, gender="")
                          for box, age in t.faces)
            return t, ImageFindings(index=0, width=0, height=0, faces=faces, nsfw=t.nsfw)
    return None


def judge_in_thread(
    prompt: str,
    images: Sequence[ImageFindings],
    image_sha256: Sequence[str],
    account: str | None,
    ruling: Ruling,
    findings: PromptFindings,
    turns: Sequence[Turn],
    judge: Judge,
) -> ThreadJudgement:
    """The ruling for ``prompt`` read with the earlier ``turns`` of its thread (oldest
    first). ``ruling`` and ``findings`` are the request judged alone."""
    if not turns:
        return ThreadJudgement(ruling)
    # Turns about the same photo (or about no photo at all) form the chain.
    if image_sha256:
        chain = [t for t in turns if not t.image_sha256
                 or set(t.image_sha256) & set(image_sha256)]
    else:
        chain = list(turns)
    context_images: Sequence[ImageFindings] = images
    photo = None if images else thread_photo(chain)
    if photo is not None:
        photo_turn, found = photo
        context_images = [found]
        alone, _ = judge(prompt, context_images)
        if _RANK[alone.decision] > _RANK[ruling.decision]:
            ruling = _cite(alone, Reason(
                ReasonCode.THREAD_PHOTO, "the request replies to a photo of a real person "
                "earlier in the conversation", checks=(photo_turn.check_id,)))

    refused = [t for t in chain if t.decision != "allow" and t.clause in SEXUALISING_CLAUSES]
    if findings.continuation and refused and _RANK[ruling.decision] < _RANK[refused[-1].decision]:
        last = refused[-1]
        decision: Decision = "block" if last.decision == "block" else "review"
        ruling = Ruling(decision, last.clause, (Reason(
            ReasonCode.THREAD_CONTINUATION,
            "the request asks to go on with a request refused earlier in the conversation",
            kind="continuation", checks=(last.check_id,)),))

    if ruling.decision != "block":
        for k in range(1, min(CHAIN_TURNS, len(chain)) + 1):
            earlier = chain[-k:]
            prefix = " ".join(t.prompt for t in earlier) + " "
            combined, _ = judge(prefix + prompt, context_images)
            if combined.decision != "block" or combined.clause not in SEXUALISING_CLAUSES:
                continue
            current = _in_current_part(combined.reasons, len(prefix))
            if current is None:
                continue  # the earlier turns cross the line on their own: not this step
            ruling = Ruling("block", combined.clause, (Reason(
                ReasonCode.THREAD_ESCALATION,
                f"read with the {k} request{'s' if k > 1 else ''} before it in the "
                "conversation, this request asks for what the policy refuses",
                kind="escalation", checks=tuple(t.check_id for t in earlier)), *current),
                minor_evidence=combined.minor_evidence)
            break

    evasion = None
    if ruling.decision == "block":
        for t in reversed(chain):
            if (t.decision == "block" and t.clause == ruling.clause and account
                    and t.account == account and _near_identical(t.prompt, prompt)):
                evasion = t.check_id
                ruling = _cite(ruling, Reason(
                    ReasonCode.EVASION_RETRY, "the request repeats, in other words, a "
                    "request refused earlier in the conversation; it counts as the same "
                    "attempt", kind="evasion", checks=(t.check_id,)))
                break
    return ThreadJudgement(ruling, evasion)


def _cite(ruling: Ruling, reason: Reason) -> Ruling:
    return replace(ruling, reasons=(reason, *ruling.reasons))


def _in_current_part(reasons: Sequence[Reason], offset: int) -> list[Reason] | None:
    """The reasons of a chain ruling with spans moved into the current request; None when
    no sexual finding touches the current request."""
    touches = False
    out: list[Reason] = []
    for r in reasons:
        span = r.span
        if span is None:
            out.append(r)
            continue
        if span.end <= offset:
            out.append(replace(r, span=None))  # in an earlier turn (cited by id)
            continue
        if r.code == ReasonCode.SEXUALISING_REQUEST:
            touches = True
        start = max(span.start, offset)
        out.append(replace(r, span=replace(span, start=start - offset, end=span.end - offset,
                                           text=span.text[start - span.start:])))
    return out if touches else None


def _near_identical(a: str, b: str) -> bool:
    """Rephrasings of one request: most words shared (Jaccard of word sets >= 0.5)."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return False
    return len(wa & wb) / len(wa | wb) >= 0.5
