"""Law-enforcement requests on SQLite and PostgreSQL: recording one places its hold, so
the account's evidence outlives its retention; a disclosure package opens only with its
passphrase and holds every item with the SHA-256 its manifest gives, and an audit proof
that verifies with the public key alone; a preservation request discloses nothing."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from cryptography.exceptions import InvalidTag

from consentry.audit.checkpoints import Signer
from consentry.audit.verify import verify, verify_export
from consentry.errors import InvalidRequest
from consentry.reporting.law_enforcement import LawEnforcementDesk, open_package

PASSPHRASE = "amber kettle river stone"


@pytest.fixture
def desk(gate) -> LawEnforcementDesk:
    return LawEnforcementDesk(gate.db, gate.vault, Signer(gate.db, bytes(range(32))),
                              clock=gate._clock)


def test_a_preservation_request_holds_the_accounts_evidence_past_retention(gate, desk, photos,
                                                                          clock):
    verdict = gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                    [photos["astronaut"]], "p1")
    assert verdict.enforcement.evidence_preserved
    request = desk.record(kind="preservation", agency="Metropolitan Police",
                          reference="MP-2026-117", legal_basis="18 USC 2703(f) letter",
                          account_id="p1", actor="cli:legal")
    assert request.hold_id is not None and request.status == "open"
    clock.advance(days=400)
    assert gate.vault.purge_expired() == 0  # held
    with pytest.raises(InvalidRequest, match="preservation, not disclosure"):
        desk.disclose(request.id, gate.settings.data_dir / "x.pkg", passphrase=PASSPHRASE,
                      actor="cli:legal")
    with pytest.raises(InvalidRequest):
        desk.record(kind="subpoena", agency="x", reference="y", legal_basis="z",
                    account_id="p1", actor="cli:legal")


def test_a_disclosure_package_opens_with_its_passphrase_and_proves_itself(gate, desk, photos,
                                                                         tmp_path):
    verdict = gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                    [photos["astronaut"]], "p2")
    request = desk.record(kind="disclosure", agency="FBI", reference="CASE-55",
                          legal_basis="search warrant 26-M-0042", account_id="p2",
                          actor="cli:legal")
    with pytest.raises(InvalidRequest):
        desk.disclose(request.id, tmp_path / "p.pkg", passphrase="short", actor="cli:legal")
    out = tmp_path / "disclosure.pkg"
    digest = desk.disclose(request.id, out, passphrase=PASSPHRASE, actor="cli:legal")
    sealed = out.read_bytes()
    assert hashlib.sha256(sealed).hexdigest() == digest
    assert photos["astronaut"] not in sealed
    with pytest.raises(InvalidTag):
        open_package(sealed, "the wrong passphrase entirely")
    archive = zipfile.ZipFile(io.BytesIO(open_package(sealed, PASSPHRASE)))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["request"]["reference"] == "CASE-55"
    contents = [i for i in manifest["items"] if i["content"]]
    assert contents and all(
        hashlib.sha256(archive.read(i["content"])).hexdigest() == i["content_sha256"]
        for i in contents)
    assert any(i["of"] == f"check:{verdict.id}" for i in manifest["items"])
    proof = tmp_path / "proof.jsonl"
    proof.write_bytes(archive.read("audit-proof.jsonl"))
    checked = verify_export(proof, manifest["audit_proof"]["public_key"])
    assert checked.ok, checked.problem
    assert [r.status for r in desk.requests()] == ["disclosed"]
    assert verify(gate.db).ok
