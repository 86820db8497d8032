"""The tamper-evident record on SQLite and PostgreSQL: verdicts, review events, bank
changes and people changes become links in their own transaction; editing, deleting,
inserting or reordering any link is detected and the first bad one named; a rolled-back
change leaves no link; an exported range verifies with the public key alone and a
tampered export does not; concurrent writers on PostgreSQL make one unbroken chain."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, text, update

from consentry import audit
from consentry.audit.chain import canonical, link_hash
from consentry.audit.checkpoints import Signer, public_key_text
from consentry.audit.export import export
from consentry.audit.verify import verify, verify_export
from consentry.banks.registry import BankRegistry, EntryHashes
from consentry.store.models import AuditRecord, CheckRecord

KEY = bytes(range(32))
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
def signer(db) -> Signer:
    audit.install()
    return Signer(db, KEY, every_records=5)


def _checks(db, n: int, prefix: str = "chk") -> None:
    for i in range(n):
        with db.transaction() as s:
            s.add(CheckRecord(id=f"{prefix}_{i}", kind="generation",
                              created_at=datetime.now(UTC), decision="block",
                              category="intimate_image_abuse", clause="II-1",
                              policy_version="test", image_sha256=[],
                              verdict={"reasons": [], "n": i}, latency_ms=1.0,
                              prompt="put her in a bikini"))


def _kinds(db) -> list[str]:
    with db.transaction() as s:
        return list(s.scalars(select(AuditRecord.kind).order_by(AuditRecord.seq)))


def test_changes_become_links_in_their_own_transaction(db, signer):
    _checks(db, 2)
    registry = BankRegistry(db)
    registry.create("victims", "block", "ncii")
    entry = registry.add_entry("victims", EntryHashes(pdq=PDQ))
    registry.set_entry_enabled(entry.id, False, actor="user:1:lee", reason="a false match, "
                               "checked twice")
    kinds = _kinds(db)
    assert kinds[:2] == ["verdict.block", "verdict.block"]
    assert {"bank.bank_created", "bank.entry_added", "bank.entry_disabled"} <= set(kinds)
    with db.transaction() as s:
        first = json.loads(s.scalar(select(AuditRecord.payload).where(AuditRecord.seq == 1)))
    assert first["subject"] == "chk_0" and first["actor"] == "gate"
    assert "bikini" not in json.dumps(first)  # the row's digest, not its personal data
    assert verify(db).ok

    with pytest.raises(RuntimeError), db.transaction() as s:  # rolled back: no link
        s.add(CheckRecord(id="chk_lost", kind="generation", created_at=datetime.now(UTC),
                          decision="block", category="x", clause="II-1",
                          policy_version="t", image_sha256=[], verdict={}, latency_ms=1.0))
        s.flush()
        raise RuntimeError("the change fails")
    assert len(_kinds(db)) == len(kinds)
    report = verify(db)
    assert report.ok and report.checked == len(kinds)


@pytest.mark.parametrize("tamper, bad_seq, words", [
    ("edit", 3, "edited"),
    ("delete", 3, "missing"),
    ("insert", 4, "links were moved"),
    ("reorder", 3, "links were moved"),
    ("truncate", 6, "missing at the end"),
])
def test_every_kind_of_tampering_is_detected_and_named(db, signer, tamper, bad_seq, words):
    _checks(db, 6)
    assert verify(db).ok
    with db.transaction() as s:
        if tamper == "edit":
            payload = s.scalar(select(AuditRecord.payload).where(AuditRecord.seq == 3))
            s.execute(update(AuditRecord).where(AuditRecord.seq == 3)
                      .values(payload=payload.replace("chk_2", "chk_x")))
        elif tamper == "delete":
            s.execute(delete(AuditRecord).where(AuditRecord.seq == 3))
        elif tamper == "insert":  # a forged link slipped in, well formed, later ones moved
            s.execute(text("UPDATE audit_records SET seq = seq + 100 WHERE seq >= 3"))
            s.execute(text("UPDATE audit_records SET seq = seq - 99 WHERE seq >= 103"))
            prev = s.scalar(select(AuditRecord.hash).where(AuditRecord.seq == 2))
            payload = canonical({"seq": 3, "kind": "verdict.allow", "subject": "forged"})
            s.add(AuditRecord(seq=3, at=datetime.now(UTC), kind="verdict.allow",
                              subject="forged", payload=payload, prev_hash=prev,
                              hash=link_hash(prev, payload)))
        elif tamper == "reorder":
            s.execute(text("UPDATE audit_records SET seq = 100 WHERE seq = 3"))
            s.execute(text("UPDATE audit_records SET seq = 3 WHERE seq = 4"))
            s.execute(text("UPDATE audit_records SET seq = 4 WHERE seq = 100"))
        elif tamper == "truncate":
            s.execute(delete(AuditRecord).where(AuditRecord.seq == 6))
    report = verify(db)
    assert not report.ok
    assert report.bad_seq == bad_seq, report.problem
    assert words in (report.problem or "")


def test_an_edited_source_row_is_found_against_its_link(db, signer):
    _checks(db, 3)
    with db.transaction() as s:
        s.execute(update(CheckRecord).where(CheckRecord.id == "chk_1")
                  .values(decision="allow"))
    assert verify(db).ok  # the chain itself is intact
    report = verify(db, sources=True)
    assert not report.ok and report.changed_sources == ["checks ['chk_1']"]


def test_checkpoints_are_signed_and_an_export_verifies_with_the_public_key_alone(
        db, signer, tmp_path):
    _checks(db, 12)
    assert signer.checkpoint() is not None  # 12 links since none: due
    assert signer.checkpoint() is None  # nothing new
    _checks(db, 3, prefix="more")
    public = public_key_text(signer.public)
    assert verify(db, public=signer.public).checkpoints == 1

    out = tmp_path / "audit.jsonl"
    header = export(signer, out, first=4, last=13)
    assert header["first"] == 4 and header["last"] == 15  # extended to a new checkpoint
    report = verify_export(out, public)
    assert report.ok and (report.first, report.last) == (4, 15) and report.checkpoints == 2

    lines = out.read_text().splitlines()
    forged = [json.loads(line) for line in lines]
    forged[5]["payload"] = forged[5]["payload"].replace("block", "allow")
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(json.dumps(x) for x in forged) + "\n")
    bad = verify_export(tampered, public)
    assert not bad.ok and bad.bad_seq == forged[5]["seq"]

    other = public_key_text(Signer(db, bytes(32)).public)
    wrong = verify_export(out, other)
    assert not wrong.ok and "signature" in (wrong.problem or "")

    # A failed export leaves the good file as it was.
    before = out.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - any failure
        export(signer, out, first=50)
    assert out.read_bytes() == before


def test_concurrent_writers_make_one_unbroken_chain(db, signer):
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: _checks(db, 5, prefix=f"w{i}"), range(8)))
    report = verify(db)
    assert report.ok and report.checked == 40


def test_concurrent_batches_and_single_links_make_one_unbroken_chain(db, signer):
    # A transaction of several links (a batch of checks) reserves their numbers at once;
    # one of a single link is numbered by the server. Racing, they still make one chain.
    def batch(i: int) -> None:
        for round_ in range(4):
            with db.transaction() as s:
                for j in range(1 if i % 2 else 3):
                    s.add(CheckRecord(id=f"b{i}_{round_}_{j}", kind="generation",
                                      created_at=datetime.now(UTC), decision="allow",
                                      category="none", clause="OK-1", policy_version="test",
                                      image_sha256=[], verdict={"reasons": []},
                                      latency_ms=1.0))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(batch, range(8)))
    report = verify(db)
    assert report.ok and report.checked == 4 * (4 * 3 + 4 * 1)


def test_a_configuration_change_is_a_link_without_its_secrets(db, signer, tmp_path):
    from consentry.audit.configuration import record_configuration
    from consentry.config import Settings

    settings = Settings(data_dir=tmp_path, secret_key="s" * 40, reveals_per_shift=50,
                        removal_callback_secret="callback-secret-value")
    assert record_configuration(db, settings, "1.1.0")
    assert not record_configuration(db, settings, "1.1.0")  # unchanged: no new link
    assert record_configuration(db, Settings(data_dir=tmp_path, secret_key="s" * 40,
                                             reveals_per_shift=20), "1.1.0")
    with db.transaction() as s:
        payloads = list(s.scalars(select(AuditRecord.payload)
                                  .where(AuditRecord.kind == "config.changed")))
    assert len(payloads) == 2
    assert json.loads(payloads[1])["body"]["settings"]["reveals_per_shift"] == 20
    assert "s" * 40 not in "".join(payloads) and "callback-secret" not in "".join(payloads)
    assert verify(db).ok
