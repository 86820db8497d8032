"""The plain-language messages to requesters and affected users: the takedown channel's,
and the outcomes of human reviews and appeals. Pure: no I/O.

Every function returns a `Notice`; delivering it is `consentry.cases.senders`' job.

What a message may contain is deliberately narrow. The people reading these are often
in distress, so the text is short paragraphs of everyday English. And because email is
read on shared screens and forwarded, a notice never carries the reported image's hashes,
the status PIN, or anything about the other party (the requester never learns who
uploaded; the uploader never learns who asked). Functions take only what they may show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from consentry.cases.intake import Missing, Regime

ACCOUNT_PREFIX = "account:"

REGIME_NAMES: dict[Regime, str] = {
    Regime.TAKE_IT_DOWN: "US TAKE IT DOWN Act (47 U.S.C. 223a)",
    Regime.UK_INTIMATE_IMAGE: "UK intimate image content report (Crime and Policing Act 2026)",
    Regime.DSA_ART16: "EU Digital Services Act, Article 16 notice",
}

# English month names, not strftime's %B, so the text does not depend on the locale.
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

_SIGN_OFF = "The safety team"


@dataclass(frozen=True)
class Notice:
    """One message to one person about one case.

    `recipient` is an email address, or `account:<id>` for an uploader whom the
    platform reaches in-app.
    """

    recipient: str
    kind: str
    subject: str
    body: str
    case_number: str


def account_recipient(account_id: str) -> str:
    """The recipient string for a platform account (`account:<id>`)."""
    if account_id.startswith(ACCOUNT_PREFIX):
        return account_id
    return f"{ACCOUNT_PREFIX}{account_id}"


def format_deadline(moment: datetime) -> str:
    """A time as people read it, always in UTC: "27 November 2026, 14:05 UTC"."""
    if moment.tzinfo is None:
        # A naive time could be anyone's local time; guessing would mislead a victim
        # about when their content comes down.
        raise ValueError("naive datetime given for a deadline; use an aware UTC time")
    t = moment.astimezone(UTC)
    return f"{t.day} {_MONTHS[t.month - 1]} {t.year}, {t.hour:02d}:{t.minute:02d} UTC"


def request_received(case_number: str, regime: Regime, recipient: str, deadline: datetime,
                     status_url: str) -> Notice:
    """Confirms a complete request: case number, deadline and how to follow progress."""
    body = _body(
        "We have received your request to remove an intimate image. Thank you for "
        "telling us. You do not need to do anything else right now.",
        f"Your case number is {case_number}. Keep it safe.",
        f"We will deal with your request by {format_deadline(deadline)}. We will look for "
        "the image you reported and for copies of it, remove them, and write to you again "
        "to tell you what we did.",
        f"To check progress at any time, go to {status_url} and enter your case number "
        "and the PIN you were shown when you sent the request. For your safety we never "
        "send the PIN by email. If you have lost it, reply to this message.",
        f"Law: {REGIME_NAMES[regime]}.",
        "If you did not send this request, you can ignore this message.",
    )
    # Subjects stay neutral: they show on lock screens and in shared inboxes.
    return Notice(recipient, "request_received", f"Case {case_number}: we received your "
                  "request", body, case_number)


def request_incomplete(case_number: str, regime: Regime, recipient: str,
                       missing: Sequence[Missing], status_url: str) -> Notice:
    """Lists exactly what the request lacks and why the law asks for it."""
    if not missing:
        raise ValueError("request_incomplete needs at least one missing item")
    items = "\n".join(f"- {m.why}" for m in missing)
    body = _body(
        "We have received your request to remove an intimate image, but we need a little "
        "more information before we can act on it.",
        f"Your case number is {case_number}.",
        f"What is missing:\n{items}",
        f"The law your request was made under asks for these: {REGIME_NAMES[regime]}.",
        "We have kept your request, so you do not need to start again. To complete it, "
        f"go to {status_url} and enter your case number and the PIN you were shown when "
        "you sent the request. As soon as it is complete we will act on it and write to "
        "you again.",
        "If you are not sure what to send, reply to this message and we will help.",
    )
    return Notice(recipient, "request_incomplete",
                  f"Case {case_number}: we need more information", body, case_number)


def content_removed(case_number: str, regime: Regime, recipient: str, removed: int,
                    copies: int, *, already_removed: int = 0, banked: bool = True) -> Notice:
    """Tells the requester what was removed (``removed`` counts items already down
    before the request, ``already_removed`` of them) and that re-uploads will be
    blocked."""
    if removed < 1:
        raise ValueError("content_removed needs at least one removed item; "
                         "use nothing_found when nothing was removed")
    if not 0 <= copies + already_removed <= removed:
        raise ValueError("copies and already removed items must be within the number removed")
    if copies:
        found = (f"Of these, {_count(copies, 'was a copy', 'were copies')} we found by "
                 "matching against the image you reported.")
    else:
        found = "We did not find any other copies."
    if already_removed:
        found += (f" {_count(already_removed, 'item was', 'items were')} already down "
                  "before your request, and stay down.")
    body = _body(
        f"{_count(removed, 'item')} you reported {'is' if removed == 1 else 'are'} no longer "
        "on our service." if already_removed else
        f"We have removed {_count(removed, 'item')} for your request.",
        found,
        *([_BLOCK_LIST] if banked else []),
        f"Your case number is {case_number}. Law: {REGIME_NAMES[regime]}.",
        "If you find the image here again, or other images of you, reply to this message "
        "with the links and we will act on them.",
    )
    return Notice(recipient, "content_removed", f"Case {case_number}: content removed",
                  body, case_number)


_BLOCK_LIST = (
    "We have also added the image's hashes to our block list. A hash is a digital "
    "fingerprint of an image: it cannot be turned back into the picture. If anyone "
    "tries to upload the same image again, or one very like it, it will be blocked.")


def nothing_found(case_number: str, regime: Regime, recipient: str, *,
                  banked: bool) -> Notice:
    """Tells the requester nothing was found, whether future uploads are blocked (only
    when we had the image or its hashes to bank), and how to send more detail."""
    body = _body(
        "We have looked for the image you reported, but we could not find it on our "
        "service. It may already have been deleted, or the details we have may not be "
        "enough for us to locate it.",
        *([_BLOCK_LIST] if banked else [
            "Without the image itself we could not add it to our block list. If you can, "
            "send the image (or its fingerprint, which our form can make on your device "
            "without uploading the picture) so that future uploads of it are blocked."]),
        "If you know the image is still here, please reply to this message with anything "
        "that helps us find it: the link (web address) of the page where you saw it, the "
        "name of the account that posted it, or roughly when it was posted.",
        f"Your case number is {case_number}. Law: {REGIME_NAMES[regime]}.",
    )
    return Notice(recipient, "nothing_found", f"Case {case_number}: we could not find the "
                  "content", body, case_number)


def request_rejected(case_number: str, regime: Regime, recipient: str,
                     reasons: Sequence[str]) -> Notice:
    """Tells the requester we will not act, why, and what they can do next."""
    if not reasons:
        raise ValueError("request_rejected needs at least one reason")
    items = "\n".join(f"- {r}" for r in reasons)
    paragraphs = [
        "We have looked at your request carefully, and we are not able to act on it.",
        f"Why:\n{items}",
        f"Your case number is {case_number}. Law: {REGIME_NAMES[regime]}.",
        "If you think we got this wrong, reply to this message with any more information "
        "and someone who did not make this decision will look at it again. You can also "
        "send a new request at any time.",
    ]
    if regime is Regime.DSA_ART16:
        # DSA Art. 20-21: a notice's sender may complain for six months and may use a
        # certified out-of-court dispute settlement body or the courts.
        paragraphs.append(
            "You can ask us to review this decision for six months from today. You can "
            "also take it to a certified out-of-court dispute settlement body, or to a "
            "court.")
    return Notice(recipient, "request_rejected",
                  f"Case {case_number}: decision on your request", _body(*paragraphs),
                  case_number)


def removal_reversed(case_number: str, regime: Regime, recipient: str, reason: str) -> Notice:
    """Tells the requester that content removed for their case has been put back.

    `reason` is shown as written; it must not name or describe the uploader.
    """
    body = _body(
        "We are writing to tell you that content we removed for your request has been "
        "put back after a review.",
        f"Why: {reason}",
        "If you disagree, reply to this message with any information that may help, and "
        "someone who did not make this decision will look at it again.",
        f"Your case number is {case_number}. Law: {REGIME_NAMES[regime]}.",
    )
    return Notice(recipient, "removal_reversed", f"Case {case_number}: update on your "
                  "request", body, case_number)


def statement_of_reasons(case_number: str, regime: Regime, account_id: str,
                         content_ids: Sequence[str], clause: str, automated: bool,
                         appeal_url: str, appeal_days: int = 14,
                         statement: str | None = None) -> Notice:
    """Tells an uploader what was removed and why, with the appeal route.

    Follows DSA Art. 17(3): the restriction imposed, the facts and circumstances (a
    notice, and under which law), whether automated means decided, the ground (our
    policy clause), and redress.
    """
    if not content_ids:
        raise ValueError("statement_of_reasons needs at least one content id")
    if appeal_days < 1:
        raise ValueError("appeal_days must be at least 1")
    items = "\n".join(f"- {c}" for c in content_ids)
    if automated:
        how = ("Decided by automated means: yes. Our systems matched your content against "
               "the reported image and removed it without a person reviewing it first.")
    else:
        how = ("Decided by automated means: no. A member of our safety team reviewed the "
               "request and made this decision.")
    body = _body(
        f"We have removed the following content from your account:\n{items}",
        "Why: we received a request to remove an intimate image that was shared without "
        "the consent of the person shown. We checked it and found that this content "
        "breaks our rules.",
        f"Rule: {clause}\nLaw the request was made under: {REGIME_NAMES[regime]}",
        how,
        "A strike has been recorded on your account. Further strikes can lead to your "
        "account being suspended.",
        f"If you think we made a mistake, you can appeal within {appeal_days} days at "
        f"{appeal_url}. Someone who did not make this decision will review your appeal. "
        "You can also take the decision to a certified out-of-court dispute settlement "
        "body (if you are in the EU), or to a court.",
        f"Case number: {case_number}."
        + (f" Statement of reasons: {statement} (also sent, without your personal data, "
           "to the EU DSA Transparency Database)." if statement else ""),
    )
    return Notice(account_recipient(account_id), "statement_of_reasons",
                  f"Case {case_number}: content removed from your account", body,
                  case_number)


def restored(case_number: str, account_id: str, content_ids: Sequence[str],
             reason: str) -> Notice:
    """Tells an uploader that content we removed from their account is back."""
    if not content_ids:
        raise ValueError("restored needs at least one content id")
    items = "\n".join(f"- {c}" for c in content_ids)
    body = _body(
        f"We have put back the following content on your account:\n{items}",
        f"Why: {reason}",
        "We are sorry for the trouble this caused.",
        f"Case number: {case_number}.",
    )
    return Notice(account_recipient(account_id), "restored",
                  f"Case {case_number}: your content has been restored", body, case_number)


def review_outcome(ref: str, account_id: str, *, refused: bool, clause: str,
                   rationale: str, appeal_url: str | None, appeal_days: int = 14) -> Notice:
    """Tells a user what a person decided about their held or refused request (DSA Art.
    17: the decision, the ground, that a person decided, and redress)."""
    decision = ("stays refused" if refused else "is allowed after all")
    paragraphs = [
        f"A member of our safety team has reviewed your request ({ref}) and it {decision}.",
        f"Rule: {clause}", f"Why: {rationale}",
        "Decided by automated means: no. A person made this decision.",
    ]
    if refused and appeal_url:
        paragraphs.append(f"If you think we made a mistake, you can appeal within "
                          f"{appeal_days} days at {appeal_url}. Someone who did not make "
                          "this decision will review your appeal.")
    if not refused:
        paragraphs.append("We are sorry for the delay, and for any strike or suspension "
                          "it caused: they have been removed.")
    return Notice(account_recipient(account_id), "review_outcome",
                  f"{ref}: the outcome of our review", _body(*paragraphs), ref)


def appeal_outcome(ref: str, recipient: str, *, granted: bool, rationale: str) -> Notice:
    """Tells whoever appealed what a second reviewer decided, and why."""
    if granted:
        first = ("We have looked at your appeal again and agree with you: the decision has "
                 "been reversed, and anything it took from you has been put back.")
    else:
        first = ("We have looked at your appeal again, and the decision stands.")
    body = _body(first, f"Why: {rationale}",
                 "The appeal was decided by a person who did not make the first decision. "
                 "If you are in the EU you can also take the decision to a certified "
                 "out-of-court dispute settlement body, or to a court.",
                 f"Reference: {ref}.")
    return Notice(recipient, "appeal_outcome", f"{ref}: the outcome of your appeal", body, ref)


def suspension_lifted(ref: str, account_id: str, rationale: str) -> Notice:
    """Tells a user a suspension is lifted after a child-safety review found no minor was
    sexualised, with an apology (POLICY.md, CS-1)."""
    body = _body(
        "Your account was suspended while a specialist reviewed a request you made. The "
        "review found that it did not sexualise a minor, so the suspension has been lifted.",
        f"Why: {rationale}",
        "We are sorry. Suspending first and checking after is how we keep children safe, "
        "but we know it was wrong in your case and that it will have been upsetting.",
        f"Reference: {ref}.",
    )
    return Notice(account_recipient(account_id), "suspension_lifted",
                  f"{ref}: your account is active again", body, ref)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _body(*paragraphs: str) -> str:
    # Unwrapped paragraphs: mail clients and in-app views reflow them, and hard wraps
    # would break the links.
    return "Hello,\n\n" + "\n\n".join(paragraphs) + f"\n\n{_SIGN_OFF}\n"
