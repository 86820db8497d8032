"""Personal data in ordinary tables (a notice's address and text, an appellant's contact
and words, a refused prompt, a thread's turns) on SQLite and PostgreSQL: sealed when
written, sealed once at start where an older version wrote it in the clear, readable
with the key (and after a rotation), and nowhere in the database without it."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sent_notices import sent_notices
from sqlalchemy import select, text

from consentry.audit.verify import verify
from consentry.errors import ConfigurationError
from consentry.evidence import Vault, parse_keys
from consentry.evidence.fields import Column
from consentry.store.models import (
    Appeal,
    Base,
    CheckRecord,
    MaintenanceRun,
    Notification,
    TakedownCase,
    ThreadTurn,
)

K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(1, 33))).decode()
NAME, ADDRESS = "Jane Roe", "jane.roe@example.org"


def _everything(db) -> str:
    """Every value of every table, as text: what someone with the database and no key
    could read."""
    out: list[str] = []
    with db.transaction() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(text(f'SELECT * FROM "{table.name}"')):
                out.extend(_text(value) for value in row)
    return "\n".join(out)


def _text(value: object) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _legacy_rows(gate) -> None:
    """Rows as a version before sealed fields wrote them."""
    now = gate._clock()
    with gate.db.transaction() as s:
        s.add(CheckRecord(id="chk_old", kind="generation", account_id=None, created_at=now,
                          decision="block", category="ncii", clause="II-2",
                          policy_version="test", prompt=f"put {NAME} in a bikini",
                          image_sha256=[], latency_ms=1.0, verdict={"reasons": [
                              {"code": "real_person_reference",
                               "span": {"start": 4, "end": 12, "text": NAME}}]}))
        s.flush()
        s.add(ThreadTurn(thread_id="t-old", check_id="chk_old", created_at=now,
                         expires_at=now + timedelta(hours=1), prompt=f"this is {NAME}",
                         image_sha256=[], faces=[], nsfw=0.0, decision="block",
                         clause="II-2"))
        case = TakedownCase(number="TD-0000000077", pin_hash="-", regime="take_it_down",
                            channel="web", received_at=now,
                            deadline_at=now + timedelta(hours=48),
                            submission={"email": ADDRESS, "requester_name": NAME})
        s.add(case)
        s.flush()
        s.add(Notification(case_id=case.id, kind="request_received", recipient=ADDRESS,
                           subject="We received your request", body=f"Dear {NAME}, ...",
                           channel="email", delivered=False,
                           detail=f"550 {ADDRESS}: no such user", at=now))
        s.add(Notification(case_id=case.id, kind="statement_of_reasons",
                           recipient="account:u9", subject="Removed", body="Your post...",
                           channel="outbox", delivered=True, detail="", at=now))
        s.add(Appeal(subject_kind="check", subject="chk_old", account_id="u9",
                     reason=f"I am {NAME} and this is my own photo", contact=ADDRESS,
                     filed_at=now))


def test_personal_data_kept_in_the_clear_is_sealed_once_at_start(gate):
    _legacy_rows(gate)
    assert NAME in _everything(gate.db)
    counts = gate.vault.seal_plaintext()
    # the prompt, the turn, an address, two texts, a detail, the contact and the reason;
    # the verdict's quote of the name
    assert counts["seal_fields"] == 8 and counts["seal_takedown_requests"] == 1
    assert counts["verdicts_without_quotes"] == 1
    everything = _everything(gate.db)
    assert NAME not in everything and ADDRESS not in everything
    assert "account:u9" in everything  # an account's own id routes its notices
    # What was sealed still reads with the key, and the chain holds the verdict's change.
    fields = gate.vault.fields
    assert {(n.recipient, n.body) for n in sent_notices(gate.db, gate.vault)} == {
        (ADDRESS, f"Dear {NAME}, ..."), ("account:u9", "Your post...")}
    with gate.db.transaction() as s:
        check, appeal = s.get(CheckRecord, "chk_old"), s.scalars(select(Appeal)).one()
        turn = s.scalars(select(ThreadTurn)).one()
        assert fields.open(check.prompt, Column.CHECK_PROMPT) == f"put {NAME} in a bikini"
        assert fields.open(turn.prompt, Column.TURN_PROMPT) == f"this is {NAME}"
        assert fields.open(appeal.contact, Column.APPEAL_CONTACT) == ADDRESS
        assert {r.name for r in s.scalars(select(MaintenanceRun))} == {
            "seal_fields", "seal_takedown_requests", "verdicts_without_quotes"}
    assert verify(gate.db).ok
    # Done once: the next start does not walk the tables again.
    assert gate.vault.seal_plaintext() == {"check_media": 0}


def test_the_gate_seals_a_refused_prompt_and_the_turns_of_a_thread(gate):
    prompt = f"generate {NAME} from accounting completely naked"
    verdict = gate.check_generation(prompt, account="u1", thread="t-1", idempotency_key="k1")
    assert verdict.decision == "block"
    # The platform is told which words matched, also when it retries with the same key.
    quoted = [r["span"]["text"] for r in verdict.reasons if r.get("span")]
    assert NAME in quoted
    again = gate.check_generation(prompt, account="u1", thread="t-1", idempotency_key="k1")
    assert again.id == verdict.id and again.reasons == verdict.reasons
    gate.check_generation("now make it a watercolour", account="u1", thread="t-1")
    everything = _everything(gate.db)
    assert NAME not in everything and "watercolour" not in everything
    with gate.db.transaction() as s:
        prompts = list(s.scalars(select(ThreadTurn.prompt).order_by(ThreadTurn.id)))
        refused = s.get(CheckRecord, verdict.id)
    assert [gate.vault.fields.open(p, Column.TURN_PROMPT) for p in prompts] == [
        f"generate {NAME} from accounting completely naked", "now make it a watercolour"]
    assert gate.vault.fields.open(refused.prompt, Column.CHECK_PROMPT).startswith("generate")
    assert verify(gate.db).ok


def test_rotation_reseals_fields_and_the_old_key_can_go(db, clock):
    old = Vault(db, parse_keys(f"k1:{K1}"), clock=clock)
    old.check_keys()
    with db.transaction() as s:
        s.add(Appeal(subject_kind="check", subject="chk_x", reason=old.fields.seal(
            "my own photo, please look again", Column.APPEAL_REASON), filed_at=clock(),
            contact=old.fields.seal(ADDRESS, Column.APPEAL_CONTACT)))
    new = Vault(db, parse_keys(f"k2:{K2},k1:{K1}"), clock=clock)
    assert new.rotate(actor="admin:ops") == {"rewrapped": 0, "fields_resealed": 2}
    only_new = Vault(db, parse_keys(f"k2:{K2}"), clock=clock)
    with db.transaction() as s:
        appeal = s.scalars(select(Appeal)).one()
    assert only_new.fields.open(appeal.contact, Column.APPEAL_CONTACT) == ADDRESS
    # A value does not open in another column, nor with a different key under its id.
    with pytest.raises(ConfigurationError):
        only_new.fields.open(appeal.contact, Column.APPEAL_REASON)
    wrong = Vault(db, parse_keys(f"k2:{K1}"), clock=clock)
    with pytest.raises(ConfigurationError):
        wrong.fields.open(appeal.contact, Column.APPEAL_CONTACT)
    assert verify(db).ok
