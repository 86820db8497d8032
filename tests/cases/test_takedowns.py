"""The takedown case from request to removal, on a real database with a loopback
platform receiving the signed removal callbacks."""

from __future__ import annotations

import pytest
from platform_content import tida
from sent_notices import SentNotice, sent_notices
from sqlalchemy import func, select

from consentry.cases.callback import MAX_ATTEMPTS
from consentry.cases.case import CaseStatus, Due
from consentry.cases.intake import (
    ContentLocator,
    Declaration,
    Regime,
    TakedownSubmission,
)
from consentry.cases.takedowns import CaseNotFound, CaseStateError
from consentry.errors import InvalidRequest, TooManyAttempts
from consentry.reporting.sla import takedown_sla
from consentry.signals.hashing import fingerprint
from consentry.store.models import RemovalAttempt, Strike


def notices_of(takedowns, kind: str) -> list[SentNotice]:
    return sent_notices(takedowns.db, takedowns.log.vault, kind)


def test_request_by_url_removes_every_copy_and_strikes_uploaders(takedowns, platform, posted):
    result = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/resized",))))
    case = result.case
    assert case.status is CaseStatus.REMOVED
    assert {r.content_id for r in platform.received} == {
        "post-reencoded", "post-resized", "post-mirrored"}
    assert platform.bad_signatures == 0
    assert "post-coffee" not in platform.removed
    assert sorted(i.content_id for i in case.located if i.identified) == ["post-resized"]
    assert case.time_to_removal is not None and case.time_to_removal.total_seconds() < 60
    with takedowns.db.transaction() as s:
        struck = s.scalars(select(Strike.account_id).where(
            Strike.takedown_case == case.number)).all()
    assert sorted(struck) == ["uploader-0", "uploader-1", "uploader-2"]
    assert takedowns.banks.content.get("post-mirrored").removed
    assert [n.recipient for n in notices_of(takedowns, "content_removed")] == ["sam@example.org"]
    assert "3" in notices_of(takedowns, "content_removed")[0].body
    reasons = notices_of(takedowns, "statement_of_reasons")
    assert sorted(n.recipient for n in reasons) == [
        "account:uploader-0", "account:uploader-1", "account:uploader-2"]
    assert all("II-3" in n.body and "14" in n.body for n in reasons)
    assert len(result.pin) == 8 and result.pin not in notices_of(
        takedowns, "request_received")[0].body


def test_banked_hashes_find_the_image_again(takedowns, posted, photos):
    case = takedowns.submit(tida(ContentLocator(content_ids=("post-reencoded",)))).case
    fp = fingerprint(photos["astronaut"])
    matches = takedowns.banks.matcher.match(fp.hashes.md5, fp.query_array())
    assert any(m.bank == "takedowns" and m.clause == "II-3" for m in matches)
    assert case.status is CaseStatus.REMOVED


def test_device_hashes_alone_find_mirrored_copies(takedowns, platform, posted, photos):
    fp = fingerprint(photos["astronaut"])
    locator = ContentLocator(pdq_hashes=(fp.hashes.pdq.hex,), md5_hashes=(fp.hashes.md5,))
    case = takedowns.submit(tida(locator)).case
    assert case.status is CaseStatus.REMOVED
    assert {"post-reencoded", "post-resized", "post-mirrored"} == platform.removed


def test_incomplete_request_is_kept_and_answered_with_what_is_missing(takedowns, platform,
                                                                       posted):
    bare = TakedownSubmission(regime=Regime.TAKE_IT_DOWN, email="sam@example.org",
                              locator=ContentLocator(urls=("https://social.example/p/resized",)))
    result = takedowns.submit(bare)
    assert result.case.status is CaseStatus.INCOMPLETE
    assert {m.field for m in result.missing} == {"signature", "statement"}
    assert not platform.received
    told = notices_of(takedowns, "request_incomplete")
    assert len(told) == 1 and "signature" in told[0].body.lower()

    done = takedowns.amend(result.case.number, result.pin,
                           tida(ContentLocator(urls=("https://social.example/p/resized",))))
    assert done.case.status is CaseStatus.REMOVED
    assert len(platform.removed) == 3


def test_status_page_needs_the_pin_and_locks_after_repeated_guesses(takedowns, posted, clock):
    result = takedowns.submit(tida(ContentLocator(content_ids=("post-resized",))))
    number = result.case.number
    assert takedowns.status(number.lower(), result.pin).status is CaseStatus.REMOVED
    with pytest.raises(CaseNotFound) as unknown:
        takedowns.status("TD-0000000000", result.pin)
    for _ in range(5):
        with pytest.raises(CaseNotFound) as wrong:
            takedowns.status(number, "00000000")
    assert str(wrong.value) == str(unknown.value)  # nothing revealed either way
    with pytest.raises(TooManyAttempts):
        takedowns.status(number, result.pin)  # even the right PIN waits out the lock
    clock.advance(minutes=16)
    assert takedowns.status(number, result.pin).number == number


def test_callback_down_is_retried_with_backoff_and_every_attempt_recorded(
        takedowns, platform, posted, clock):
    platform.fail_next = 6  # 3 items fail twice each
    case = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/resized",))))
    assert case.case.status is CaseStatus.LOCATED and not case.case.removed
    clock.advance(seconds=5)
    takedowns.dispatch()
    assert takedowns.view(case.case.number).status is CaseStatus.LOCATED
    clock.advance(seconds=10)
    takedowns.dispatch()
    view = takedowns.view(case.case.number)
    assert view.status is CaseStatus.REMOVED and len(view.removed) == 3
    with takedowns.db.transaction() as s:
        outcomes = s.scalars(select(RemovalAttempt.outcome).order_by(RemovalAttempt.id)).all()
    assert outcomes.count("http_error") == 6 and outcomes.count("ok") == 3
    assert len(platform.received) == 3  # one removal per item, whatever the retries


def test_callback_that_never_answers_leaves_the_case_for_a_moderator(
        takedowns, platform, posted, clock):
    platform.fail_next = 10_000
    number = takedowns.submit(tida(ContentLocator(content_ids=("post-resized",)))).case.number
    for _ in range(MAX_ATTEMPTS):
        clock.advance(minutes=31)
        takedowns.dispatch()
    view = takedowns.view(number)
    assert view.status is CaseStatus.LOCATED and len(view.failed) == 3 and not view.removed
    with takedowns.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(RemovalAttempt)) == 3 * MAX_ATTEMPTS
    assert [v.number for v in takedowns.list_cases(Due.OPEN)] == [number]
    platform.fail_next = 0
    after = takedowns.remove(number, actor="mod-1")
    assert after.status is CaseStatus.REMOVED and len(platform.removed) == 3


def test_duplicate_request_is_merged_into_the_open_case(takedowns, platform, posted, clock):
    platform.fail_next = 10_000  # keep the first case open
    first = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/resized",))))
    second = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/resized",)),
                                   email="friend@example.org"))
    assert second.case.merged_into == first.case.number
    assert [v.number for v in takedowns.list_cases()] == [first.case.number]
    platform.fail_next = 0
    clock.advance(seconds=6)
    takedowns.dispatch()
    assert takedowns.status(second.case.number, second.pin).status is CaseStatus.REMOVED
    told = sorted(n.recipient for n in notices_of(takedowns, "content_removed"))
    assert told == ["friend@example.org", "sam@example.org"]
    assert len(platform.received) == 3


def test_unknown_content_is_reported_and_the_case_kept(takedowns, platform, posted):
    case = takedowns.submit(tida(ContentLocator(content_ids=("no-such-post",)))).case
    assert case.status is CaseStatus.RECEIVED and case.unknown == ("no-such-post",)
    assert not platform.received
    assert [v.number for v in takedowns.list_cases()] == [case.number]
    assert notices_of(takedowns, "nothing_found")


def test_sla_lists_at_risk_and_overdue_cases(takedowns, posted, clock):
    number = takedowns.submit(tida(ContentLocator(content_ids=("nothing-here",)))).case.number
    assert takedowns.list_cases(Due.AT_RISK) == []
    clock.advance(hours=43)
    assert [v.number for v in takedowns.list_cases(Due.AT_RISK)] == [number]
    clock.advance(hours=6)
    assert [v.number for v in takedowns.list_cases(Due.OVERDUE)] == [number]
    assert takedowns.view(number).to_dict(clock())["due"] == "overdue"


def test_reject_then_appeal(takedowns, posted):
    result = takedowns.submit(tida(ContentLocator(content_ids=("nothing-here",))))
    with pytest.raises(InvalidRequest):
        takedowns.reject(result.case.number, ["  "], actor="mod-1")
    rejected = takedowns.reject(result.case.number, ["the linked post is not on this platform"],
                                actor="mod-1")
    assert rejected.status is CaseStatus.REJECTED
    assert "not on this platform" in notices_of(takedowns, "request_rejected")[0].body
    appealed = takedowns.appeal(result.case.number, result.pin, "it is there, see the new link")
    assert appealed.status is CaseStatus.APPEALED
    with pytest.raises(CaseStateError):
        takedowns.appeal(result.case.number, result.pin, "again")


def test_moderator_reversal_restores_content_and_lifts_strikes(takedowns, platform, posted,
                                                               photos):
    number = takedowns.submit(tida(ContentLocator(content_ids=("post-resized",)))).case.number
    view = takedowns.reverse(number, "the requester is not the person shown", actor="mod-1")
    assert view.status is CaseStatus.REVERSED and not view.removed
    assert platform.removed == set()
    assert {r.action for r in platform.received} == {"remove", "restore"}
    with takedowns.db.transaction() as s:
        assert all(s.scalars(select(Strike.revoked_at).where(Strike.takedown_case == number)))
    fp = fingerprint(photos["astronaut"])
    assert not [m for m in takedowns.banks.matcher.match(fp.hashes.md5, fp.query_array())
                if m.bank == "takedowns"]
    assert not takedowns.banks.content.get("post-mirrored").removed
    assert len(notices_of(takedowns, "restored")) == 3


def test_bad_input_is_refused_and_records_nothing(takedowns):
    with pytest.raises(InvalidRequest) as bad:
        takedowns.submit(tida(ContentLocator(images=1)), [b"this is not an image"])
    assert bad.value.code == "invalid_image" and bad.value.field == "images[0]"
    with pytest.raises(InvalidRequest):
        takedowns.submit(tida(ContentLocator(urls=("x" * 3000,))))
    assert takedowns.list_cases() == []


def test_a_platform_that_is_down_is_recorded_and_retried(takedowns, posted, clock):
    import socket

    from consentry.cases.callback import PlatformCallback

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    takedowns.removals.callback = PlatformCallback(
        f"http://127.0.0.1:{port}/{{content_id}}", "a-secret-of-16-chars")
    case = takedowns.submit(tida(ContentLocator(content_ids=("post-resized",)))).case
    assert case.status is CaseStatus.LOCATED and not case.removed
    with takedowns.db.transaction() as s:
        attempts = s.execute(select(RemovalAttempt.outcome, RemovalAttempt.detail)).all()
    assert len(attempts) == 3 and {o for o, _ in attempts} == {"unreachable"}
    assert all("Connect" in detail for _, detail in attempts)
    assert not takedowns.banks.content.get("post-resized").removed  # nothing marked removed


def test_an_error_after_intake_keeps_the_case_and_returns_the_pin(takedowns, posted,
                                                                  monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("content index unavailable")

    with monkeypatch.context() as patched:
        patched.setattr("consentry.cases.takedowns.locate", broken)
        result = takedowns.submit(tida(ContentLocator(content_ids=("post-resized",))))
    assert len(result.pin) == 8 and result.case.status is CaseStatus.RECEIVED
    assert [e.kind.value for e in result.case.events][-1] == "processing_failed"
    assert [v.number for v in takedowns.list_cases()] == [result.case.number]
    assert takedowns.remove(result.case.number, actor="mod").status is CaseStatus.REMOVED


def test_a_notice_of_child_abuse_material_is_removed_and_escalated(takedowns, platform, posted):
    older = takedowns.submit(tida(ContentLocator(content_ids=("no-such-post",)))).case
    notice = TakedownSubmission(
        regime=Regime.DSA_ART16, locator=ContentLocator(urls=("https://social.example/p/resized",)),
        statement="This shows a child.", csam=True,
        declarations=frozenset({Declaration.GOOD_FAITH, Declaration.TRUTH}))
    case = takedowns.submit(notice).case  # name and email may be left out (Art. 16(2)(c))
    assert case.status is CaseStatus.REMOVED and len(platform.removed) == 3
    assert case.escalated and case.to_dict()["escalated"] is True
    assert not takedowns.view(older.number).escalated
    platform.fail_next = 10_000
    open_one = takedowns.submit(TakedownSubmission(
        regime=Regime.DSA_ART16, locator=ContentLocator(content_ids=("post-coffee",)),
        statement="a child", csam=True,
        declarations=frozenset({Declaration.GOOD_FAITH, Declaration.TRUTH}))).case
    assert [v.number for v in takedowns.list_cases()] == [open_one.number, older.number]


def test_sla_figures_count_time_from_receipt_to_removal(takedowns, platform, posted, clock):
    platform.fail_next = 3  # every item fails once: removed on the retry 5 s later
    takedowns.submit(tida(ContentLocator(content_ids=("post-resized",))))
    clock.advance(seconds=5)
    takedowns.dispatch()
    takedowns.submit(tida(ContentLocator(content_ids=("nothing-here",))))
    assert takedown_sla(takedowns.db).model_dump() == {
        "cases": 2, "removed": 1, "removed_within_deadline": 1,
        "median_time_to_removal_s": 5.0, "slowest_time_to_removal_s": 5.0, "open": 1}
    assert takedown_sla(takedowns.db, since=clock()).cases == 1
