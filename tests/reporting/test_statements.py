"""DSA statements of reasons: one per restriction, in the Transparency Database's
vocabulary, without personal data, kept in the restriction's transaction and sent in
batches of 100 to a loopback database that speaks the documented API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dsa_server import TOKEN, DsaDatabase
from sqlalchemy import func, select

from consentry.config import Settings
from consentry.reporting.statements import install
from consentry.reporting.statements import vocabulary as v
from consentry.reporting.statements.builder import Restriction, build
from consentry.reporting.statements.client import DatabaseSettings, TransparencyDatabase
from consentry.reporting.statements.submitter import StatementSubmitter
from consentry.store import Database
from consentry.store.models import (
    Account,
    CheckRecord,
    DsaStatement,
    ReviewEvent,
    ReviewItem,
    Strike,
    Suspension,
    TakedownCase,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ACCOUNT = "acct-jane.doe@example.org"  # an id that is personal data
PROMPT = "put Jane Doe from 12 Elm Street in a bikini"


@pytest.fixture(autouse=True)
def _recording() -> None:
    install("1.1.0")


@pytest.fixture
def dsa() -> Iterator[DsaDatabase]:
    server = DsaDatabase()
    yield server
    server.close()


def _client(server: DsaDatabase, token: str = TOKEN) -> TransparencyDatabase:
    return TransparencyDatabase(DatabaseSettings(server.url, token, timeout_s=5,
                                                 max_attempts=3),
                                sleep=lambda _s: None)


def _upheld(s, check_id: str, clause: str) -> None:
    """A reviewer refuses a held request: its item and the ``decided`` event."""
    item = ReviewItem(queue="gate_review", kind="review_verdict", subject=check_id,
                      account_id=ACCOUNT, clause=clause, restricted=False, has_media=True,
                      priority=1, due_at=NOW, status="closed", created_at=NOW,
                      closed_at=NOW, outcome="upheld")
    s.add(item)
    s.flush()
    s.add(ReviewEvent(item_id=item.id, kind="decided", actor_id=None, actor="mia", at=NOW,
                      details={"decision": "uphold", "clause": clause,
                               "rationale": "a revealing edit of a real person"}))


def _check(s, check_id: str, *, kind: str = "generation", clause: str = "II-1",
           decision: str = "block", strike: int = 1, images: int = 1) -> CheckRecord:
    row = CheckRecord(
        id=check_id, kind=kind, account_id=ACCOUNT, created_at=NOW, decision=decision,
        category="intimate_image_abuse", clause=clause, policy_version="1.1.0",
        prompt=PROMPT, prompt_sha256="0" * 64, image_sha256=["a" * 64] * images,
        request_sha256="b" * 64, content_id=None,
        verdict={"id": check_id, "reasons": [
            {"code": "real_person_reference", "detail": "points at Jane Doe",
             "span": {"text": "Jane Doe"}},
            {"code": "sexualising_request", "span": {"text": "bikini"}}],
            "enforcement": {"strike_weight": strike}},
        latency_ms=1.0)
    s.add(row)
    s.flush()
    return row


def _account(s) -> None:
    if s.get(Account, ACCOUNT) is None:
        s.add(Account(id=ACCOUNT, created_at=NOW))
        s.flush()


def _statements(db: Database) -> dict[str, DsaStatement]:
    with db.transaction() as s:
        rows = s.scalars(select(DsaStatement)).all()
        for row in rows:
            s.expunge(row)
    return {r.puid: r for r in rows}


# -- what each restriction yields -------------------------------------------------------


@pytest.mark.parametrize(("clause", "surface", "ground", "category", "keyword"), [
    ("CS-1", "generation", v.ILLEGAL, v.PROTECTION_OF_MINORS, v.CSAM_DEEPFAKE),
    ("CS-1", "upload", v.ILLEGAL, v.PROTECTION_OF_MINORS, v.CSAM),
    ("KM-1", "upload", v.ILLEGAL, v.PROTECTION_OF_MINORS, v.CSAM),
    ("II-1", "generation", v.INCOMPATIBLE, v.CYBER_VIOLENCE, v.NCII_DEEPFAKE),
    ("II-2", "output", v.INCOMPATIBLE, v.CYBER_VIOLENCE, v.NCII_DEEPFAKE),
    ("II-3", "upload", v.ILLEGAL, v.CYBER_VIOLENCE, v.NCII),
    ("II-3", "takedown", v.ILLEGAL, v.CYBER_VIOLENCE, v.NCII),
    ("SX-1", "generation", v.INCOMPATIBLE, v.OTHER_VIOLATION_TC, v.ADULT_SEXUAL_MATERIAL),
])
def test_each_clause_maps_to_its_ground_category_and_keyword(clause, surface, ground,
                                                             category, keyword):
    statement = build(Restriction(puid="p-1", surface=surface, clause=clause,
                                  policy_version="1.1.0", decided_at=NOW, facts="facts"))
    assert (statement["decision_ground"], statement["category"]) == (ground, category)
    assert statement["category_specification"] == [keyword]
    if ground == v.ILLEGAL:
        assert statement["illegal_content_legal_ground"]
        assert statement["illegal_content_explanation"]
        assert "incompatible_content_ground" not in statement
    else:
        assert statement["incompatible_content_ground"] == f"Content policy 1.1.0, clause {clause}"
        assert "illegal_content_legal_ground" not in statement
    expected_visibility = (v.CONTENT_REMOVED if surface == "takedown" else v.CONTENT_DISABLED)
    assert statement["decision_visibility"] == [expected_visibility]
    assert statement["territorial_scope"] == sorted(v.EEA) and len(v.EEA) == 30


def test_a_clause_the_database_cannot_state_is_refused_loudly():
    with pytest.raises(ValueError, match="FC-1"):
        build(Restriction(puid="p", surface="generation", clause="FC-1",
                          policy_version="1", decided_at=NOW, facts="x"))


def test_every_restriction_kind_is_kept_in_its_own_transaction(db: Database):
    with db.transaction() as s:
        _account(s)
        _check(s, "chk_refused", clause="II-1")
        _check(s, "chk_allowed", decision="allow", clause="OK-1")
        _check(s, "chk_failclosed", clause="FC-1", strike=0)
        s.add(Suspension(account_id=ACCOUNT, check_id="chk_refused", clause="II-1",
                         reason="3 active strikes (latest under II-1)", starts_at=NOW,
                         ends_at=NOW + timedelta(days=7)))
        s.add(TakedownCase(number="TD-ABCDEF1234", pin_hash="x", regime="dsa_art16",
                           channel="api", received_at=NOW, deadline_at=NOW,
                           submission={"email": "victim@example.org"}))
        s.add(Strike(account_id=ACCOUNT, check_id=None, clause="II-3", weight=2,
                     created_at=NOW, expires_at=NOW + timedelta(days=180),
                     takedown_case="TD-ABCDEF1234"))
        _check(s, "chk_held", decision="review", clause="II-1")
        _upheld(s, "chk_held", "II-1")
        s.add(Strike(account_id=ACCOUNT, check_id="chk_held", clause="II-1", weight=1,
                     created_at=NOW, expires_at=NOW + timedelta(days=180)))
        # Refused by a person under a clause that strikes nothing: still a restriction.
        _check(s, "chk_held_sx", decision="review", clause="SX-1", strike=0)
        _upheld(s, "chk_held_sx", "SX-1")
        _check(s, "chk_held_allowed", decision="review", clause="II-1")
        s.add(Suspension(account_id=ACCOUNT, check_id="chk_refused", clause="CS-1",
                         reason="CS-1: sexualising a minor", starts_at=NOW, ends_at=None,
                         pending_review=True))
    kept = _statements(db)
    assert "chk_allowed" not in kept and "chk_failclosed" not in kept
    refused = kept["chk_refused"].statement
    assert refused["decision_visibility"] == [v.CONTENT_DISABLED]
    assert refused["automated_decision"] == v.FULLY_AUTOMATED
    assert refused["content_type"] == [v.TEXT, v.IMAGE]
    assert refused["source_type"] == v.SOURCE_VOLUNTARY
    held = kept["chk_held"].statement  # a person refused what the gate held
    assert held["automated_decision"] == v.NOT_AUTOMATED
    assert kept["chk_held_sx"].statement["automated_decision"] == v.NOT_AUTOMATED
    assert "chk_held_allowed" not in kept  # held, not (yet) refused: no restriction
    takedown = next(r for r in kept.values() if r.subject_kind == "takedown")
    assert takedown.puid.startswith("TD-ABCDEF1234-S")
    assert takedown.statement["decision_visibility"] == [v.CONTENT_REMOVED]
    assert takedown.statement["source_type"] == v.SOURCE_ARTICLE_16
    assert takedown.statement["decision_ground"] == v.ILLEGAL
    suspensions = {r.statement["category"]: r.statement for r in kept.values()
                   if r.subject_kind == "suspension"}
    temporary = suspensions[v.CYBER_VIOLENCE]  # 3 strikes: 7 days
    assert temporary["decision_account"] == v.ACCOUNT_SUSPENDED
    assert temporary["end_date_account_restriction"] == "2026-12-02"
    pending = suspensions[v.PROTECTION_OF_MINORS]  # CS-1: until a reviewer decides
    assert pending["decision_account"] == v.ACCOUNT_SUSPENDED
    assert "end_date_account_restriction" not in pending
    assert {r.status for r in kept.values()} == {"queued"}
    assert len(kept) == 6  # 3 checks, 1 removal, 2 suspensions

    # A child-safety reviewer confirms the CS-1 suspension: a person's decision to close.
    with db.transaction() as s:
        pending = s.scalars(select(Suspension).where(Suspension.pending_review)).one()
        pending.pending_review = False
        pending_id = pending.id
    confirmed = _statements(db)[f"sus-{pending_id}-confirmed"].statement
    assert confirmed["decision_account"] == v.ACCOUNT_TERMINATED
    assert confirmed["automated_decision"] == v.NOT_AUTOMATED


def test_a_statement_holds_no_personal_data(db: Database):
    with db.transaction() as s:
        _account(s)
        _check(s, "chk_pd", clause="II-2")
        s.add(Suspension(account_id=ACCOUNT, check_id="chk_pd", clause="II-2",
                         reason="5 active strikes (latest under II-2)", starts_at=NOW,
                         ends_at=None))
        s.add(TakedownCase(number="TD-PD00000001", pin_hash="x", regime="take_it_down",
                           channel="api", received_at=NOW, deadline_at=NOW,
                           submission={"email": "victim@example.org"}))
        s.add(Strike(account_id=ACCOUNT, clause="II-3", weight=2, created_at=NOW,
                     expires_at=NOW + timedelta(days=180), takedown_case="TD-PD00000001"))
    kept = _statements(db)
    assert len(kept) == 3
    for row in kept.values():
        assert row.account_id == ACCOUNT  # kept beside it, to show it to the account
        text = json.dumps(row.statement).lower()
        for personal in (ACCOUNT, "jane", "doe", "elm street", "bikini", "victim@",
                         "example.org", PROMPT.lower()):
            assert personal.lower() not in text, (personal, row.puid)


def test_the_gate_keeps_a_statement_with_its_refusal(db: Database, clock, tmp_path):
    from consentry.gate import Gate

    gate = Gate(db, settings=Settings(data_dir=tmp_path, semantic_layer=False), clock=clock)
    try:
        verdict = gate.check_generation("nude schoolgirl", account=ACCOUNT)
        allowed = gate.check_generation("a cup of coffee on a table", account=ACCOUNT)
    finally:
        gate.close()
    assert verdict.decision == "block" and verdict.policy.clause == "CS-1"
    assert verdict.statement_of_reasons == verdict.id
    assert allowed.statement_of_reasons is None
    kept = _statements(db)
    statement = kept[verdict.id].statement
    assert statement["category"] == v.PROTECTION_OF_MINORS
    assert statement["decision_ground"] == v.ILLEGAL
    suspension = next(r for r in kept.values() if r.subject_kind == "suspension")
    assert suspension.statement["decision_account"] == v.ACCOUNT_SUSPENDED  # pending review
    assert "schoolgirl" not in json.dumps([r.statement for r in kept.values()])


# -- sending them -----------------------------------------------------------------------


def _queue(db: Database, n: int, prefix: str = "chk_") -> list[str]:
    puids = [f"{prefix}{i:04d}" for i in range(n)]
    with db.transaction() as s:
        _account(s)
        for i, puid in enumerate(puids):
            s.add(CheckRecord(
                id=puid, kind="upload", account_id=ACCOUNT,
                created_at=NOW + timedelta(seconds=i), decision="block",
                category="intimate_image_abuse", clause="II-3", policy_version="1.1.0",
                image_sha256=[], request_sha256="c", verdict={"reasons": []},
                latency_ms=1.0))
    return puids


def _count(db: Database, status: str) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(DsaStatement)
                        .where(DsaStatement.status == status)) or 0


def test_250_statements_go_as_3_calls(db: Database, dsa: DsaDatabase):
    puids = _queue(db, 250)
    done = StatementSubmitter(db, _client(dsa), clock=lambda: NOW).submit_due()
    assert [size for size, _ in dsa.calls] == [100, 100, 50]
    assert (done.calls, done.sent) == (3, 250)
    assert sorted(dsa.statements) == puids
    assert _count(db, "sent") == 250
    assert StatementSubmitter(db, _client(dsa)).submit_due().calls == 0


def test_a_failed_round_resumes_without_duplicates(db: Database, dsa: DsaDatabase):
    _queue(db, 250)
    clock = [NOW]
    submitter = StatementSubmitter(db, _client(dsa), clock=lambda: clock[0])
    submitter.submit_due(max_calls=1)  # 100 sent, then the process stops
    dsa.fail_next = 3  # the next batch: every retry answered 503
    failed = submitter.submit_due()
    assert failed.deferred == 100 and failed.error and "503" in failed.error
    assert _count(db, "queued") == 150
    with db.transaction() as s:
        waiting = s.scalars(select(DsaStatement).where(
            DsaStatement.status == "queued")).all()
        assert {r.attempts for r in waiting} == {0, 1}
        assert all(r.last_error for r in waiting if r.attempts)
    dsa.lose_next = 1  # then the database takes a batch and the answer is lost
    clock[0] = NOW + timedelta(hours=1)
    submitter.submit_due()
    clock[0] = NOW + timedelta(hours=2)
    submitter.submit_due()  # resent: "already there" for the lost one
    assert _count(db, "sent") == 250 and _count(db, "queued") == 0
    assert len(dsa.statements) == 250  # each once
    statuses = [status for _, status in dsa.calls]
    assert statuses.count(422) == 1  # the resend of the lost batch


def test_a_duplicate_puid_answer_counts_as_sent_and_the_rest_goes(db: Database,
                                                                  dsa: DsaDatabase):
    puids = _queue(db, 5)
    dsa.statements[puids[2]] = {"puid": puids[2], "uuid": "earlier"}  # sent before a crash
    done = StatementSubmitter(db, _client(dsa)).submit_due()
    assert [status for _, status in dsa.calls] == [422, 201]
    assert (done.already_there, done.sent) == (1, 4)
    assert _count(db, "sent") == 5


def test_an_invalid_statement_is_kept_as_failed_and_the_rest_goes(db: Database,
                                                                 dsa: DsaDatabase):
    puids = _queue(db, 3)
    with db.transaction() as s:
        row = s.get_one(DsaStatement, puids[1])
        row.statement = {**row.statement, "category": "STATEMENT_CATEGORY_NOT_A_THING"}
    done = StatementSubmitter(db, _client(dsa)).submit_due()
    assert (done.failed, done.sent) == (1, 2)
    with db.transaction() as s:
        failed = s.get_one(DsaStatement, puids[1])
        assert failed.status == "failed" and "category" in (failed.last_error or "")
    assert puids[1] not in dsa.statements


def test_a_wrong_token_sends_nothing_and_loses_nothing(db: Database, dsa: DsaDatabase):
    _queue(db, 3)
    done = StatementSubmitter(db, _client(dsa, token="wrong")).submit_due()
    assert dsa.calls == [(3, 401)] and "401" in (done.error or "")
    assert _count(db, "queued") == 3 and not dsa.statements


def test_without_a_database_configured_statements_are_kept(db: Database):
    _queue(db, 2)
    assert StatementSubmitter(db, None).submit_due().calls == 0
    assert _count(db, "queued") == 2


def test_the_database_address_must_be_https():
    from consentry.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="https"):
        DatabaseSettings("http://transparency.example.eu", TOKEN)


def test_the_platform_reads_a_statement_with_its_appeal_link(db: Database, clock, tmp_path):
    from fastapi.testclient import TestClient

    from consentry.access import Scope, create_api_key
    from consentry.api.app import create_app
    from consentry.gate import Gate

    gate = Gate(db, settings=Settings(data_dir=tmp_path, semantic_layer=False), clock=clock)
    check_key = create_api_key(db, "pipeline", [Scope.CHECK])[1]
    read_key = create_api_key(db, "support", [Scope.ACCOUNTS_READ])[1]
    try:
        with TestClient(create_app(gate=gate)) as client:
            verdict = client.post("/v1/check/generation",
                                  headers={"Authorization": f"Bearer {check_key}"},
                                  json={"prompt": "nude schoolgirl", "account": ACCOUNT}).json()
            puid = verdict["statement_of_reasons"]
            got = client.get(f"/v1/statements/{puid}",
                             headers={"Authorization": f"Bearer {read_key}"})
            missing = client.get("/v1/statements/nope",
                                 headers={"Authorization": f"Bearer {read_key}"})
            refused = client.get(f"/v1/statements/{puid}",
                                 headers={"Authorization": f"Bearer {check_key}"})
    finally:
        gate.close()
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == "queued" and body["statement"]["puid"] == puid
    assert body["appeal_url"] == verdict["appeal"]["url"]
    assert missing.status_code == 404 and refused.status_code == 403


def test_submission_is_configured_by_both_settings_or_neither(db: Database):
    from consentry.errors import ConfigurationError
    from consentry.reporting.statements.submitter import submitter_for

    assert submitter_for(db, Settings()).database is None
    assert submitter_for(db, Settings(dsa_url="https://transparency.dsa.ec.europa.eu",
                                      dsa_token=TOKEN)).database is not None
    with pytest.raises(ConfigurationError, match="CONSENTRY_DSA_TOKEN"):
        submitter_for(db, Settings(dsa_url="https://transparency.dsa.ec.europa.eu"))


def test_the_environment_configures_submission(monkeypatch):
    monkeypatch.setenv("CONSENTRY_DSA_URL", "https://transparency.dsa.ec.europa.eu/")
    monkeypatch.setenv("CONSENTRY_DSA_TOKEN", TOKEN)
    settings = Settings.from_env()
    assert settings.dsa_url == "https://transparency.dsa.ec.europa.eu"
    assert settings.dsa_token == TOKEN and TOKEN not in repr(settings)
