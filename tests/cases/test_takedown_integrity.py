"""A case's actions check the case's state, and what a case did (removals, bank entries,
strikes) belongs to that case: another case, or reversing one, never undoes or repeats it.
Each test reproduces a defect found by following the docs as a case worker would."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from platform_content import register, tida
from sent_notices import SentNotice, sent_notices
from sqlalchemy import select

from consentry.cases.case import CaseStatus
from consentry.cases.intake import ContentLocator, Regime, TakedownSubmission
from consentry.cases.takedowns import CaseStateError
from consentry.signals.hashing import fingerprint
from consentry.store.models import Strike

RESIZED = "https://social.example/p/resized"


def _strikes(takedowns, account: str) -> int:
    with takedowns.db.transaction() as s:
        return len(s.scalars(select(Strike).where(Strike.account_id == account,
                                                  Strike.revoked_at.is_(None))).all())


def _notices(takedowns, kind: str) -> list[SentNotice]:
    return sent_notices(takedowns.db, takedowns.log.vault, kind)


def _entry_enabled(takedowns, entry_id: int) -> bool:
    return takedowns.banks.registry.entry(entry_id).status == "active"


def test_a_second_case_for_removed_content_neither_removes_nor_strikes_again(
        takedowns, platform, posted):
    first = takedowns.submit(tida(ContentLocator(urls=(RESIZED,)))).case
    assert first.status is CaseStatus.REMOVED
    callbacks = len(platform.received)
    assert _strikes(takedowns, "uploader-1") == 1

    second = takedowns.submit(tida(ContentLocator(urls=(RESIZED,)), email="kim@example.org"))
    assert len(platform.received) == callbacks  # nothing sent: it is already down
    assert _strikes(takedowns, "uploader-1") == 1  # struck once, by the first case
    assert second.case.status is CaseStatus.REMOVED  # the content is gone either way
    assert second.case.public()["items_removed"] >= 1


def test_reversing_one_case_leaves_another_cases_removal_and_bank_entries(
        takedowns, platform, posted, photos):
    first = takedowns.submit(tida(ContentLocator(urls=(RESIZED,)))).case
    entries = [e for ev in first.events if ev.kind.value == "banked"
               for e in ev.details["entries"]]
    assert entries
    second = takedowns.submit(tida(ContentLocator(urls=(RESIZED,)), email="kim@example.org"))

    takedowns.reverse(second.case.number, "filed in error", actor="cli:test")
    assert all(_entry_enabled(takedowns, e) for e in entries)  # the first case's entries
    assert takedowns.view(first.number).status is CaseStatus.REMOVED
    assert takedowns.banks.content.get("post-resized").removed
    assert not [r for r in platform.received if r.action == "restore"]
    fp = fingerprint(photos["astronaut"])
    assert takedowns.banks.matcher.match(fp.hashes.md5, fp.query_array())  # still blocked


def test_reversing_the_case_that_banked_an_entry_keeps_it_while_another_case_stands(
        takedowns, platform, posted):
    """The first case removes and banks; a later one names the same item and so holds the
    same entry. Reversing the first must not unblock the image the second requester still
    wants down."""
    first = takedowns.submit(tida(ContentLocator(urls=(RESIZED,)))).case
    takedowns.submit(tida(ContentLocator(content_ids=("post-resized",)),
                          email="kim@example.org"))
    takedowns.reverse(first.number, "filed in error", actor="cli:test")
    fp = fingerprint(posted["resized"])
    assert takedowns.banks.matcher.match(fp.hashes.md5, fp.query_array())


def test_rejecting_a_rejected_case_is_refused_and_sends_nothing(takedowns, posted):
    case = takedowns.submit(tida(ContentLocator(content_ids=("nowhere",)))).case
    takedowns.reject(case.number, ["not on this platform"], actor="cli:test")
    with pytest.raises(CaseStateError):
        takedowns.reject(case.number, ["still not"], actor="cli:test")
    assert len(_notices(takedowns, "request_rejected")) == 1


def test_an_incomplete_rejected_request_cannot_be_acted_on(takedowns, platform, posted):
    partial = takedowns.submit(TakedownSubmission(Regime.TAKE_IT_DOWN,
                                                  ContentLocator(urls=(RESIZED,))))
    assert partial.case.status is CaseStatus.INCOMPLETE
    takedowns.reject(partial.case.number, ["no signature"], actor="cli:test")
    with pytest.raises(CaseStateError):
        takedowns.remove(partial.case.number, actor="cli:test")
    assert platform.received == []


def _crop(jpeg: bytes, fraction: float) -> bytes:
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    dx, dy = round(img.width * fraction), round(img.height * fraction)
    buf = io.BytesIO()
    img.crop((dx, dy, img.width - dx, img.height - dy)).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def test_a_request_with_the_image_finds_a_cropped_copy_as_a_sweep_does(
        takedowns, platform, photos):
    register(takedowns, "post-cropped", _crop(photos["astronaut"], 0.05), "cropper")
    register(takedowns, "post-coffee", photos["coffee"], "bystander")
    case = takedowns.submit(tida(ContentLocator()), [photos["astronaut"]]).case
    assert [i.content_id for i in case.located] == ["post-cropped"]
    assert platform.removed == {"post-cropped"}


def test_nothing_found_does_not_claim_hashes_were_banked_when_none_were(takedowns, posted):
    takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/unknown",))))
    (notice,) = _notices(takedowns, "nothing_found")
    assert "added the image's hashes" not in notice.body
    assert "could not add it to our block list" in notice.body


def test_a_link_written_differently_still_finds_the_item(takedowns, platform, posted):
    """The same page, as people copy it: another case, a trailing slash, a fragment."""
    case = takedowns.submit(tida(ContentLocator(
        urls=("HTTPS://Social.Example:443/p/resized/#comments",)))).case
    assert case.unknown == () and "post-resized" in case.removed
    assert case.public()["not_found"] == []
