"""People decide what automation can't, and every restriction can be appealed: the review
queues, claims, decisions and appeals over the real gate, the real takedown service and a
loopback platform, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from likeness_photos import enrolment_photos, third_picture
from platform_content import register, tida
from removal_platform import SECRET
from sent_notices import SentNotice, sent_notices
from sqlalchemy import func, select

from consentry.banks.services import entry_hashes
from consentry.cases.appeals import AlreadyAppealed, AppealDesk, AppealWindowClosed
from consentry.cases.callback import PlatformCallback
from consentry.cases.decisions import Decision, Decisions
from consentry.cases.intake import ContentLocator
from consentry.cases.review import ItemGone, Reviewer, ReviewQueues
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.errors import InvalidRequest, TooManyAttempts
from consentry.likeness.registry import LikenessConflict, NotEnrolled
from consentry.signals.hashing import fingerprint
from consentry.store.models import (
    CheckMedia,
    CheckRecord,
    LikenessFace,
    ReviewItem,
    Strike,
    User,
)
from consentry.store.review import open_item

WHY = "a swimsuit edit of a real woman"
TOKEN = re.compile(r"token=(ap_[\w-]+\.[\w-]+)")


@pytest.fixture
def people(gate, clock) -> dict[str, Reviewer]:
    """Console users: two moderators, a child-safety reviewer, a lead, compliance."""
    out = {}
    with gate.db.transaction() as s:
        for name, roles in (("mia", ["moderator"]), ("noah", ["moderator"]),
                            ("cara", ["child_safety"]), ("lee", ["lead"]),
                            ("cora", ["compliance"])):
            user = User(username=name, display_name=name.title(), password_hash="-",
                        roles=roles, created_at=clock(), password_changed_at=clock())
            s.add(user)
            s.flush()
            out[name] = Reviewer(user.id, name, frozenset(roles))
    return out


@pytest.fixture
def desk(gate, clock, tmp_path, platform):
    callback = PlatformCallback(platform.url, SECRET)
    takedowns = TakedownService(gate.db, gate.banks, gate.policy, callback=callback,
                                sender=OutboxSender(tmp_path / "outbox"), clock=clock,
                                appeal_tokens=gate.appeal_tokens, vault=gate.vault)
    queues = ReviewQueues(gate.db, clock=clock, reveals_per_shift=2,
                          case_view=lambda n: takedowns.view(n).to_dict(), vault=gate.vault)
    decisions = Decisions(queues, takedowns, gate.banks, gate.policy, sender=takedowns.log.sender,
                          appeal_tokens=gate.appeal_tokens, public_url="https://safety.example",
                          likeness=gate.likeness)
    yield {"queues": queues, "decisions": decisions, "takedowns": takedowns,
           "appeals": AppealDesk(gate.db, gate.appeal_tokens, gate.policy, clock=clock,
                                  fields=gate.vault.fields)}
    callback.close()


def _strikes(gate, account: str) -> int:
    return gate.account_state(account).active_strikes


def _notices(gate, kind: str) -> list[SentNotice]:
    return sent_notices(gate.db, gate.vault, kind)


def test_a_held_request_is_decided_by_a_person_who_tells_the_user(gate, desk, people,
                                                                  photos, platform):
    from consentry.reporting import statements
    from consentry.store.models import DsaStatement

    statements.install(gate.policy.version)  # as the service does at start
    held = gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    assert held.decision == "review"
    queues, decide = desk["queues"], desk["decisions"]
    item = queues.take_next(people["mia"], "gate_review")
    assert item is not None and item.subject == held.id
    assert queues.take_next(people["noah"], "gate_review") is None  # mia holds it
    [done] = decide.decide(people["mia"], [item.id], Decision.UPHOLD, "II-1", WHY)
    assert done.decided, done.problem
    assert _strikes(gate, "u1") == 1
    desk["takedowns"].dispatch()
    assert [(r.action, r.content_id) for r in platform.received] == [("remove", held.id)]
    (told,) = _notices(gate, "review_outcome")
    assert told.recipient == "account:u1" and "stays refused" in told.body
    assert "/appeals?token=ap_" in told.body
    with gate.db.transaction() as s:  # a person's refusal has its statement of reasons
        kept = s.get(DsaStatement, held.id)
        assert kept is not None and kept.statement["automated_decision"] == \
            "AUTOMATED_DECISION_NOT_AUTOMATED"

    other = gate.check_generation("make her look hot", [photos["astronaut"]], "u2")
    item = queues.take_next(people["noah"], "gate_review")
    decide.decide(people["noah"], [item.id], Decision.OVERTURN, "OK-1",
                  "a portrait, nothing sexual about it")
    desk["takedowns"].dispatch()
    assert ("restore", other.id) in [(r.action, r.content_id) for r in platform.received]
    assert _strikes(gate, "u2") == 0


def test_a_cs1_suspension_waits_for_child_safety_who_confirm_or_lift_it(gate, desk, people,
                                                                       photos):
    first = gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                  [photos["astronaut"]], "p1")
    second = gate.check_generation("sexy 16yo in a bikini", [], "p2")
    queues, decide = desk["queues"], desk["decisions"]
    assert "child_safety" not in queues.queues(people["mia"])
    with pytest.raises(ItemGone):  # not even reachable by id without the role
        queues.detail(people["mia"], queues.page(people["cara"], "child_safety")[0].id)
    assert queues.take_next(people["mia"], "child_safety") is None
    items = {i.subject: i for i in queues.page(people["cara"], "child_safety")}
    outcome = decide.decide(people["mia"], [items[first.id].id], Decision.UPHOLD, "CS-1", WHY)
    assert outcome == [type(outcome[0])(items[first.id].id, False, "no such item")]

    decide.decide(people["cara"], [items[first.id].id], Decision.UPHOLD, "CS-1",
                  "the prompt sexualises a schoolgirl")
    assert gate.account_state("p1").status == "permanently_suspended"
    decide.decide(people["cara"], [items[second.id].id], Decision.OVERTURN, "OK-1",
                  "fictional adult character, age misread by the words")
    assert gate.account_state("p2").status == "active"
    (sorry,) = _notices(gate, "suspension_lifted")
    assert sorry.recipient == "account:p2" and "sorry" in sorry.body.lower()


def _items(gate, n: int, queue: str = "gate_review", has_media: bool = False) -> list[int]:
    """``n`` held requests without an account, as the gate records them (quicker than
    running the models ``n`` times)."""
    now = gate._clock()
    with gate.db.transaction() as s:
        ids = []
        for i in range(n):
            s.add(CheckRecord(id=f"chk_held_{i}", kind="generation", created_at=now,
                              decision="review", category="intimate_image_abuse",
                              clause="RV-1", policy_version="test", image_sha256=[],
                              verdict={"reasons": []}, latency_ms=1.0))
            s.flush()
            ids.append(open_item(s, queue=queue, kind="review_verdict",
                                 subject=f"chk_held_{i}", account_id=None, clause="RV-1",
                                 restricted=False, has_media=has_media, priority=2,
                                 due_at=now + timedelta(days=2, hours=i), now=now))
        return ids


def test_no_two_reviewers_ever_hold_the_same_item(gate, desk, people, clock):
    _items(gate, 30)
    with gate.db.transaction() as s:
        extra = [User(username=f"mod{i}", display_name=f"Mod {i}", password_hash="-",
                      roles=["moderator"], created_at=clock(), password_changed_at=clock())
                 for i in range(20)]
        s.add_all(extra)
        s.flush()
        claimers = [Reviewer(u.id, u.username, frozenset({"moderator"})) for u in extra]
    with ThreadPoolExecutor(20) as pool:
        taken = list(pool.map(lambda r: desk["queues"].take_next(r, "gate_review"), claimers))
    ids = [t.id for t in taken if t is not None]
    assert len(ids) == 20 and len(set(ids)) == 20


def test_a_claim_runs_out_after_ten_minutes(gate, desk, people, clock):
    _items(gate, 1)
    queues = desk["queues"]
    held = queues.take_next(people["mia"], "gate_review")
    assert queues.take_next(people["noah"], "gate_review") is None
    clock.advance(minutes=11)
    assert queues.take_next(people["noah"], "gate_review").id == held.id


def test_a_decision_needs_a_clause_and_a_reason(gate, desk, people):
    [item] = _items(gate, 1)
    decide = desk["decisions"].decide
    with pytest.raises(InvalidRequest, match="clause"):
        decide(people["mia"], [item], Decision.UPHOLD, "", WHY)
    with pytest.raises(InvalidRequest, match="few words"):
        decide(people["mia"], [item], Decision.UPHOLD, "II-1", "looks bad")
    with pytest.raises(InvalidRequest):
        decide(people["mia"], list(range(1, 502)), Decision.UPHOLD, "II-1", WHY)
    [read_only] = decide(people["cora"], [item], Decision.UPHOLD, "II-1", WHY)
    assert not read_only.decided and "read-only" in read_only.problem


def test_a_bulk_decision_reports_what_it_could_not_do(gate, desk, people):
    ids = _items(gate, 5)
    desk["queues"].claim(people["noah"], ids[2])
    outcomes = desk["decisions"].decide(people["mia"], ids, Decision.OVERTURN, "OK-1",
                                        "nothing sexual in these at all")
    assert [o.decided for o in outcomes] == [True, True, False, True, True]
    assert "someone else" in outcomes[2].problem


def test_an_appeal_goes_to_another_reviewer_and_undoes_the_refusal(gate, desk, people, photos):
    queues, decide, appeals = desk["queues"], desk["decisions"], desk["appeals"]
    held = gate.check_generation("make her look hot", [photos["astronaut"]], "u3")
    item = queues.take_next(people["mia"], "gate_review")
    decide.decide(people["mia"], [item.id], Decision.UPHOLD, "II-1", WHY)
    token = TOKEN.search(_notices(gate, "review_outcome")[0].body).group(1)
    filed = appeals.file(token, "It is my own photo and I am fully dressed in it.")
    assert filed.queue == "appeals"
    assert queues.take_next(people["mia"], "appeals") is None  # she decided the refusal
    second = queues.take_next(people["noah"], "appeals")
    assert second.id == filed.item_id and second.account_id == "u3"
    assert _strikes(gate, "u3") == 1
    decide.decide(people["noah"], [second.id], Decision.OVERTURN, "OK-1",
                  "the user's own portrait, not sexual")
    assert _strikes(gate, "u3") == 0
    (told,) = _notices(gate, "appeal_outcome")
    assert told.recipient == "account:u3" and "agree with you" in told.body
    with pytest.raises(AlreadyAppealed):
        appeals.file(token, "again, I still think it is wrong")
    assert held.appeal is None  # held: nothing to appeal until a person refused it


def test_an_automated_refusal_is_appealed_with_the_token_in_its_verdict(gate, desk, people,
                                                                        photos, clock):
    verdict = gate.check_generation("put her in a bikini", [photos["astronaut"]], "u4")
    appeals = desk["appeals"]
    with pytest.raises(InvalidRequest):
        appeals.file(verdict.appeal.token[:-2] + "xx", "this is not what I asked for")
    with pytest.raises(InvalidRequest):
        appeals.file(verdict.appeal.token, "no")  # say why
    late = gate.check_generation("put her in a bikini", [photos["astronaut"]], "u5")
    clock.advance(days=15)
    with pytest.raises(AppealWindowClosed):
        appeals.file(late.appeal.token, "I only now saw this refusal, sorry")


def test_an_uploader_appeals_a_takedown_removal_and_a_second_reviewer_restores_it(
        gate, desk, people, photos, platform):
    takedowns, queues, decide = desk["takedowns"], desk["queues"], desk["decisions"]
    register(takedowns, "post-7", photos["hopper"], "uploader-7",
             url="https://social.example/p/7")
    case = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/7",)))).case
    assert case.status.value == "removed" and _strikes(gate, "uploader-7") == 2
    statement = next(n for n in _notices(gate, "statement_of_reasons")
                     if n.recipient == "account:uploader-7")
    token = TOKEN.search(statement.body).group(1)
    filed = desk["appeals"].file(token, "This is a photo of me that I posted myself.")
    item = queues.take_next(people["noah"], "appeals")
    assert item.id == filed.item_id
    decide.decide(people["noah"], [item.id], Decision.OVERTURN, "OK-1",
                  "the uploader is the person shown and consented")
    takedowns.dispatch()
    assert ("restore", "post-7") in [(r.action, r.content_id) for r in platform.received]
    assert _strikes(gate, "uploader-7") == 0
    entries = [e for ev in takedowns.view(case.number).events if ev.kind.value == "banked"
               for e in ev.details["entries"]]
    assert entries and all(gate.banks.registry.entry(e).status == "disabled"
                           for e in entries)


def test_reveals_are_recorded_and_a_shift_has_a_limit(gate, desk, people, photos):
    gate.check_generation("make her look hot", [photos["astronaut"]], "u6")
    _items(gate, 1)  # one item without media
    queues = desk["queues"]
    item = queues.take_next(people["mia"], "gate_review")
    assert item.has_media
    assert queues.media(people["mia"], item.id, 0, reveal=False) == photos["astronaut"]
    for _ in range(2):
        queues.media(people["mia"], item.id, 0, reveal=True)
    with pytest.raises(TooManyAttempts):
        queues.media(people["mia"], item.id, 0, reveal=True)
    assert queues.reveal_counts() == {"mia": 2}
    queues.release(people["mia"], item.id)
    offered = queues.take_next(people["mia"], "gate_review")
    assert offered is not None and not offered.has_media  # past the limit: no media work


def test_a_takedown_case_is_an_item_until_it_closes(gate, desk, people, photos, clock):
    takedowns, queues = desk["takedowns"], desk["queues"]
    case = takedowns.submit(tida(ContentLocator(content_ids=("not-yet-there",)))).case
    [item] = queues.page(people["lee"], "takedowns")
    assert (item.subject, item.due_at) == (case.number, case.deadline_at)
    register(takedowns, "not-yet-there", photos["coffee"], "uploader-9")
    desk["decisions"].decide(people["lee"], [item.id], Decision.UPHOLD, "II-3",
                             "now found, remove it as requested")
    assert takedowns.view(case.number).status.value == "removed"
    assert queues.page(people["lee"], "takedowns") == []
    with gate.db.transaction() as s:
        row = s.get(ReviewItem, item.id)
        assert (row.status, row.outcome) == ("closed", "uphold")
    stats = {q.queue: q for q in queues.stats(people["lee"])}
    assert stats["takedowns"].handled == 1 and stats["takedowns"].open == 0


def test_strikes_are_owned_by_what_made_them(gate, desk, people, photos):
    """Overturning one refusal revokes its strike only."""
    a = gate.check_generation("put her in a bikini", [photos["astronaut"]], "u8")
    gate.check_generation("take off her top", [photos["astronaut"]], "u8")
    assert _strikes(gate, "u8") == 2
    filed = desk["appeals"].file(a.appeal.token, "That edit was of a mannequin, not a person.")
    item = desk["queues"].take_next(people["noah"], "appeals")
    assert item.id == filed.item_id
    desk["decisions"].decide(people["noah"], [item.id], Decision.OVERTURN, "OK-1",
                             "a mannequin in a shop window")
    with gate.db.transaction() as s:
        revoked = s.scalars(select(Strike.check_id).where(Strike.account_id == "u8",
                                                          Strike.revoked_at.is_not(None)))
        assert list(revoked) == [a.id]
    assert _strikes(gate, "u8") == 1


def test_a_queue_pages_through_every_item_once_in_working_order(gate, desk, people):
    ids = _items(gate, 120)
    queues, seen, after = desk["queues"], [], None
    while page := queues.page(people["mia"], "gate_review", limit=50, after=after):
        seen += [i.id for i in page]
        after = (page[-1].priority, page[-1].due_at, page[-1].id)
    assert seen == ids  # soonest due first, each once


def test_a_disputed_hash_match_upheld_goes_into_an_allow_bank(gate, desk, people, photos):
    """An upload refused as a known victim's image (II-3) that is not: the dispute goes to
    the hash-dispute queue; upholding it lifts the strike and lets the image through."""
    gate.banks.registry.create("victims", "block", "ncii")
    gate.banks.registry.add_entry("victims", entry_hashes(fingerprint(photos["coffee"])))
    refused = gate.check_upload(photos["coffee"], "baker", "post-1")
    assert (refused.decision, refused.policy.clause) == ("block", "II-3")
    assert _strikes(gate, "baker") == 2
    filed = desk["appeals"].file(refused.appeal.token, "This is my own photo of my coffee.")
    assert filed.queue == "hash_disputes"
    item = desk["queues"].take_next(people["noah"], "hash_disputes")
    desk["decisions"].decide(people["noah"], [item.id], Decision.OVERTURN, "OK-1",
                             "a coffee cup, not the reported image")
    assert _strikes(gate, "baker") == 0
    again = gate.check_upload(photos["coffee"], "baker", "post-2")
    assert again.decision == "allow"  # the allow bank explains the match away


def _refused_by_image(gate, photo: bytes, account: str, clause: str = "SX-1") -> int:
    """An upload the image analysis refused, with its evidence, as the gate records one
    (the real models need an explicit photo to refuse, which the tests do not ship)."""
    now = gate._clock()
    check_id = f"chk_img_{account}"
    with gate.db.transaction() as s:
        s.add(CheckRecord(id=check_id, kind="upload", account_id=None, created_at=now,
                          decision="block", category="sexual_content", clause=clause,
                          policy_version="test", image_sha256=[], content_id=f"post-{account}",
                          verdict={"reasons": []}, latency_ms=1.0))
        s.flush()
        s.add(CheckMedia(check_id=check_id, position=0, sha256="-", content=photo))
        return open_item(s, queue="image_refusals", kind="image_refusal", subject=check_id,
                         account_id=None, clause=clause, restricted=False, has_media=True,
                         priority=3, due_at=now + timedelta(days=2), now=now)


def test_confirming_an_image_refusal_banks_it_and_overturning_one_restores_it(
        gate, desk, people, photos, platform):
    confirm = _refused_by_image(gate, photos["flower"], "a1")
    restore = _refused_by_image(gate, photos["china"], "a2")
    decide = desk["decisions"].decide
    decide(people["mia"], [confirm], Decision.UPHOLD, "SX-1", "explicit nudity, no doubt")
    blocked = gate.check_upload(photos["flower"], "someone", "post-x")
    assert blocked.decision == "block" and any(r["code"] == "hash_match" and
                                               r["bank"] == "own-refusals"
                                               for r in blocked.reasons)
    decide(people["mia"], [restore], Decision.OVERTURN, "OK-1", "a landscape, no nudity")
    desk["takedowns"].dispatch()
    assert ("restore", "post-a2") in [(r.action, r.content_id) for r in platform.received]


def test_ncii_image_bytes_go_once_the_decision_is_settled_and_child_safety_bytes_stay(
        gate, desk, people, photos, clock):
    from datetime import timedelta

    from consentry.store.models import ReviewItem

    queues, decide, window = desk["queues"], desk["decisions"], timedelta(days=14)
    ncii = gate.check_generation("put her in a bikini", [photos["astronaut"]], "n1")
    child = gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                  [photos["hopper"]], "n2")
    assert (ncii.policy.clause, child.policy.clause) == ("II-1", "CS-1")
    desk["appeals"].file(ncii.appeal.token, "It is a photo of me on holiday, nothing more.")
    assert queues.drop_settled_media(window) == 0  # the appeal window is open
    clock.advance(days=15)
    assert queues.drop_settled_media(window) == 0  # and an appeal of it still is
    with gate.db.transaction() as s:
        pending = list(s.scalars(select(ReviewItem.id).where(
            ReviewItem.status == "open",
            ReviewItem.subject.in_([ncii.id, f"check:{ncii.id}"]))))
    assert pending
    for item_id in pending:
        [done] = decide.decide(people["noah"], [item_id], Decision.UPHOLD, "II-1", WHY)
        assert done.decided, done.problem
    assert queues.drop_settled_media(window) == 1
    # The hashes and metadata stay; the bytes are gone. Child-safety evidence is kept whole.
    [kept] = gate.vault.items(subject_kind="check_media", subject=ncii.id)
    assert not kept.has_content and kept.content_sha256
    assert gate.vault.media(ncii.id, 0, actor="test", why="checking the dropped bytes") is None
    assert gate.vault.media(child.id, 0, actor="test", why="checking the kept bytes") == \
        photos["hopper"]
    assert queues.drop_settled_media(window) == 0


def _held_duplicate(gate, photos) -> None:
    """The astronaut's face enrolled by "early", then again by "alice": held for review."""
    gate.likeness.enrol("early", enrolment_photos(photos["astronaut"]), actor="platform")
    with pytest.raises(LikenessConflict):
        gate.likeness.enrol("alice", enrolment_photos(photos["astronaut"]), actor="platform")


def test_a_reviewer_who_finds_the_earlier_enrolment_an_impostor_hands_the_face_back(
        gate, desk, people, photos):
    _held_duplicate(gate, photos)
    queues, decide = desk["queues"], desk["decisions"]
    item = queues.take_next(people["mia"], "gate_review")
    assert item.kind == "likeness_duplicate"
    [done] = decide.decide(people["mia"], [item.id], Decision.OVERTURN, "LR-1",
                           "alice's verified documents match the face; early is an impostor")
    assert done.decided, done.problem
    # The impostor's entry is withdrawn with its embeddings; alice enrols again, cleanly.
    with pytest.raises(NotEnrolled):
        gate.likeness.get("early")
    with gate.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(LikenessFace)) == 0
    assert gate.likeness.enrol("alice", enrolment_photos(photos["astronaut"]),
                               actor="platform").status == "active"
    # Her consent is now hers: the impostor's mild request on her picture is refused.
    third = third_picture(photos["astronaut"])
    assert gate.check_generation("make her outfit more revealing", [third],
                                 account="early").policy.clause == "II-1"


def test_a_reviewer_who_upholds_the_enrolment_on_record_refuses_the_second(
        gate, desk, people, photos):
    _held_duplicate(gate, photos)
    queues, decide = desk["queues"], desk["decisions"]
    item = queues.take_next(people["noah"], "gate_review")
    [done] = decide.decide(people["noah"], [item.id], Decision.UPHOLD, "LR-1",
                           "no evidence that alice is the person enrolled first")
    assert done.decided, done.problem
    assert gate.likeness.get("early").status == "active"
    with pytest.raises(NotEnrolled):
        gate.likeness.get("alice")  # refused: nothing of hers is on record
    with gate.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(LikenessFace)) == 2  # early's two

