"""The evidence vault on SQLite and PostgreSQL: sealed items unreadable without the key,
opened only with a reason (recorded in the audit chain), readable after a key rotation
that leaves the content untouched, purged after retention unless held; the gate seals
CS-1 and KM-1 evidence in the check's transaction and says so only then."""

from __future__ import annotations

import base64

import pytest
from sent_notices import sent_notices
from sqlalchemy import select

from consentry.audit.verify import verify
from consentry.errors import ConfigurationError, InvalidRequest
from consentry.evidence import Vault, parse_keys
from consentry.evidence.vault import EvidencePurged
from consentry.store.models import AuditRecord, CheckMedia, EvidenceItem

K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(1, 33))).decode()
SECRET_BYTES = b"\xff\xd8 the photo itself, never in plaintext"


def _vault(db, clock, keys: str = f"k1:{K1}") -> Vault:
    vault = Vault(db, parse_keys(keys), clock=clock)
    vault.check_keys()
    return vault


def _seal(vault: Vault, subject: str = "chk_1", account: str = "u1") -> str:
    with vault.db.transaction() as s:
        return vault.seal(s, subject_kind="check", subject=subject, content=SECRET_BYTES,
                          metadata={"account": account, "prompt": "the words typed"},
                          clause="CS-1", account_id=account, content_sha256="ab" * 32)


def _raw_columns(db) -> bytes:
    with db.transaction() as s:
        rows = list(s.scalars(select(EvidenceItem)))
    return b"".join((r.content or b"") + (r.sealed_metadata or b"") + (r.wrapped_key or b"")
                    for r in rows)


def test_sealed_evidence_opens_only_with_the_key_and_a_recorded_reason(db, clock):
    vault = _vault(db, clock)
    item = _seal(vault)
    raw = _raw_columns(db)
    assert SECRET_BYTES not in raw and b"the words typed" not in raw
    with pytest.raises(InvalidRequest):
        vault.open(item, actor="user:3:cara", why="look")
    opened = vault.open(item, actor="user:3:cara", why="preparing the NCMEC report")
    assert opened.content == SECRET_BYTES and opened.metadata["prompt"] == "the words typed"
    with db.transaction() as s:
        kinds = list(s.scalars(select(AuditRecord.kind).order_by(AuditRecord.seq)))
        last = s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    assert kinds[-2:] == ["evidence.sealed", "evidence.opened"]
    assert "user:3:cara" in last.payload and "preparing the NCMEC report" in last.payload
    assert verify(db).ok

    stranger = Vault(db, parse_keys(f"k1:{K2}"), clock=clock)
    with pytest.raises(ConfigurationError, match="not the key the vault used"):
        stranger.check_keys()  # a wrong key fails at start
    with pytest.raises(ConfigurationError):
        stranger.open(item, actor="x", why="trying without the key")
    missing = Vault(db, parse_keys(f"k9:{K2}"), clock=clock)
    with pytest.raises(ConfigurationError, match="does not hold"):
        missing.check_keys()


def test_rotation_rewraps_without_touching_the_content(db, clock):
    vault = _vault(db, clock)
    items = [_seal(vault, f"chk_{i}") for i in range(3)]
    with db.transaction() as s:
        before = {r.id: r.content for r in s.scalars(select(EvidenceItem))}
    rotated = _vault(db, clock, f"k2:{K2},k1:{K1}")
    assert rotated.rotate(actor="admin")["rewrapped"] == 3
    with db.transaction() as s:
        after = {r.id: (r.key_id, r.content) for r in s.scalars(select(EvidenceItem))}
    assert {k for k, _ in after.values()} == {"k2"}
    assert {i: c for i, (_, c) in after.items()} == before  # content not re-encrypted
    only_new = Vault(db, parse_keys(f"k2:{K2}"), clock=clock)
    assert only_new.open(items[0], actor="admin", why="checking the rotation").content == \
        SECRET_BYTES


def test_retention_purges_unless_a_hold_keeps_it(db, clock):
    vault = _vault(db, clock)
    kept, gone = _seal(vault, "chk_a", account="held-account"), _seal(vault, "chk_b")
    hold = vault.place_hold(account_id="held-account", reason="police preservation request "
                            "ref 2026-117", actor="user:3:cara")
    clock.advance(days=364)
    assert vault.purge_expired() == 0
    clock.advance(days=2)
    assert vault.purge_expired() == 1
    with pytest.raises(EvidencePurged):
        vault.open(gone, actor="admin", why="after retention ended")
    assert vault.open(kept, actor="admin", why="held for the police").content == SECRET_BYTES
    with pytest.raises(InvalidRequest):
        vault.lift_hold(hold, reason="done", actor="user:3:cara")
    vault.lift_hold(hold, reason="the request was withdrawn in writing", actor="user:3:cara")
    assert vault.purge_expired() == 1
    with db.transaction() as s:
        rows = list(s.scalars(select(EvidenceItem)))
    assert all(r.content is None and r.wrapped_key is None and r.purged_at for r in rows)
    assert verify(db).ok


def test_ncii_evidence_drops_its_bytes_and_keeps_its_hashes(db, clock):
    vault = _vault(db, clock)
    _seal(vault, "TD-1")
    assert vault.drop_content("check", "TD-1", actor="system",
                              reason="the takedown case is decided") == 1
    [info] = vault.items(subject="TD-1")
    assert not info.has_content and info.content_sha256 == "ab" * 32 and not info.purged


def test_the_gate_seals_cs1_and_km1_evidence_and_says_so(gate, photos):
    cs1 = gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                [photos["astronaut"]], "p1")
    assert cs1.policy.clause == "CS-1" and cs1.enforcement.evidence_preserved
    [item] = gate.vault.items(subject_kind="check", subject=cs1.id)
    assert item.clause == "CS-1" and item.account_id == "p1" and item.has_content
    opened = gate.vault.open(item.id, actor="test", why="checking the sealed photo")
    assert opened.content == photos["astronaut"]
    assert opened.metadata["prompt"].startswith("make the schoolgirl")

    ii1 = gate.check_generation("put her in a bikini", [photos["astronaut"]], "p2")
    assert ii1.decision == "block" and not ii1.enforcement.evidence_preserved
    assert gate.vault.items(subject_kind="check", subject=ii1.id) == []
    assert verify(gate.db).ok


def test_known_abuse_is_sealed_in_the_vault_and_never_kept_for_viewing(gate, photos):
    from consentry.banks.services import entry_hashes
    from consentry.signals.hashing import fingerprint

    gate.banks.registry.create("ncmec-test", "block", "csam")
    gate.banks.registry.add_entry("ncmec-test", entry_hashes(fingerprint(photos["coffee"])))
    verdict = gate.check_upload(photos["coffee"], "u9")
    assert verdict.policy.clause == "KM-1" and verdict.enforcement.evidence_preserved
    with gate.db.transaction() as s:
        assert s.scalar(select(CheckMedia).where(CheckMedia.check_id == verdict.id)) is None
    [item] = gate.vault.items(subject_kind="check", subject=verdict.id)
    assert gate.vault.open(item.id, actor="test", why="for the NCMEC upload").content == \
        photos["coffee"]


def test_keys_are_parsed_strictly():
    for bad in ("k1", "k1:notbase64", f"K1!:{K1}", f"k1:{K1},k1:{K2}", " , "):
        with pytest.raises(ConfigurationError):
            parse_keys(bad)
    ring = parse_keys(f"k2:{K2}, k1:{K1}")
    assert ring.active == "k2" and K1 not in repr(ring)


def test_images_kept_before_the_vault_are_sealed_at_start_and_still_reviewable(gate, photos):
    from consentry.store.models import CheckRecord

    with gate.db.transaction() as s:  # a row as written before the vault existed
        s.add(CheckRecord(id="chk_old", kind="upload", created_at=gate._clock(),
                          decision="block", category="sexual_content", clause="SX-1",
                          policy_version="test", image_sha256=[], verdict={"reasons": []},
                          latency_ms=1.0))
        s.flush()
        s.add(CheckMedia(check_id="chk_old", position=0, sha256="-",
                         content=photos["hopper"]))
    assert gate.vault.seal_plaintext_media() == 1
    assert gate.vault.seal_plaintext_media() == 0
    with gate.db.transaction() as s:
        row = s.get(CheckMedia, ("chk_old", 0))
        assert row.content is None and row.evidence_id
    assert photos["hopper"] not in _raw_columns(gate.db)
    assert gate.vault.media("chk_old", 0, actor="test", why="reading it back sealed") == \
        photos["hopper"]


def test_takedown_requests_are_sealed_and_the_case_still_works(gate, photos, tmp_path,
                                                               platform):
    from platform_content import register, tida
    from removal_platform import SECRET

    from consentry.cases.callback import PlatformCallback
    from consentry.cases.intake import ContentLocator
    from consentry.cases.senders import OutboxSender
    from consentry.cases.takedowns import TakedownService
    from consentry.store.models import Notification, TakedownCase

    callback = PlatformCallback(platform.url, SECRET)
    takedowns = TakedownService(gate.db, gate.banks, gate.policy, callback=callback,
                                sender=OutboxSender(tmp_path / "outbox"), vault=gate.vault)
    try:
        register(takedowns, "post-7", photos["hopper"], "uploader-7",
                 url="https://social.example/p/7")
        case = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/7",)),
                                     email="victim.private@example.org")).case
        assert case.status.value == "removed"
        with gate.db.transaction() as s:
            row = s.scalars(select(TakedownCase)).one()
            sealed_recipients = list(s.scalars(select(Notification.recipient)))
        sent = [n.recipient for n in sent_notices(gate.db, gate.vault)]
        assert all(r.startswith(("sealed:1:", "account:")) for r in sealed_recipients)
        assert set(row.submission) == {"sealed"}  # nothing personal in the row
        assert "victim.private@example.org" in sent  # the requester was still told
        assert b"victim.private" not in _raw_columns(gate.db)
        [item] = gate.vault.items(subject_kind="takedown_request", subject=case.number)
        opened = gate.vault.open(item.id, actor="test", why="checking the sealed request")
        assert opened.metadata["email"] == "victim.private@example.org"
    finally:
        callback.close()
        takedowns.close()


def test_takedown_requests_kept_before_the_vault_are_sealed_at_start(gate):
    from datetime import timedelta

    from consentry.store.models import TakedownCase

    with gate.db.transaction() as s:  # a case as recorded before the vault
        s.add(TakedownCase(number="TD-0000000042", pin_hash="-", regime="take_it_down",
                           channel="web", received_at=gate._clock(),
                           deadline_at=gate._clock() + timedelta(hours=48),
                           submission={"email": "old.victim@example.org",
                                       "requester_name": "Old Victim"}))
    assert gate.vault.seal_plaintext_requests() == 1
    assert gate.vault.seal_plaintext_requests() == 0
    with gate.db.transaction() as s:
        row = s.scalars(select(TakedownCase)).one()
        assert set(row.submission) == {"sealed"}
    assert b"old.victim" not in _raw_columns(gate.db)
    [item] = gate.vault.items(subject_kind="takedown_request")
    assert gate.vault.open(item.id, actor="test", why="reading the old request").metadata[
        "email"] == "old.victim@example.org"
