"""/v1/banks administration over HTTP: scopes, banks, entries (image or bare hashes),
duplicates, enable/disable/remove, sweep, and the actor recorded for every change."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.signals.hashing import image_hashes
from consentry.store.models import BankEvent

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def client(gate):
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def admin(gate) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(gate.db, 'trust-ops', [Scope.BANKS])[1]}"}


@pytest.fixture
def bank(client, admin) -> str:
    r = client.post("/v1/banks", headers=admin, json={
        "name": "victims", "kind": "block", "category": "ncii",
        "description": "hashes from takedown requests"})
    assert r.status_code == 201, r.text
    return "victims"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_scopes(client, gate):
    assert client.get("/v1/banks").status_code == 401
    _, checker = create_api_key(gate.db, "pipeline", [Scope.CHECK])
    r = client.get("/v1/banks", headers={"X-API-Key": checker})
    assert r.status_code == 403 and "'banks' scope" in r.json()["error"]["message"]
    _, root = create_api_key(gate.db, "root", [Scope.ADMIN])
    assert client.get("/v1/banks", headers={"X-API-Key": root}).status_code == 200


def test_bank_lifecycle(client, admin, bank):
    r = client.get("/v1/banks", headers=admin)
    assert [b["name"] for b in r.json()["banks"]] == ["victims"]
    got = client.get("/v1/banks/victims", headers=admin).json()
    assert (got["kind"], got["category"], got["clause"], got["enabled"]) == \
        ("block", "ncii", "II-3", True)
    r = client.patch("/v1/banks/victims", headers=admin, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    again = client.post("/v1/banks", headers=admin, json={
        "name": "victims", "kind": "block", "category": "ncii"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "bank_exists"


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "Bad Name!", "kind": "block", "category": "ncii"}, "body", "bank name"),
    ({"name": "b", "kind": "maybe", "category": "ncii"}, "body.kind", "'block' or 'allow'"),
    ({"name": "b", "kind": "allow", "category": "csam"}, "body", "allow banks hold benign"),
    ({"name": "b", "kind": "block"}, "body.category", "Field required"),
])
def test_bad_bank_definitions_are_422(client, admin, body, field, words):
    r = client.post("/v1/banks", headers=admin, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and words in r.json()["error"]["message"]


def test_unknown_banks_and_entries_are_404(client, admin, bank):
    for method, path, kwargs in [
        ("GET", "/v1/banks/nope", {}),
        ("PATCH", "/v1/banks/nope", {"json": {"enabled": True}}),
        ("GET", "/v1/banks/nope/entries", {}),
        ("POST", "/v1/banks/nope/entries", {"json": {"pdq": PDQ}}),
        ("POST", "/v1/banks/victims/sweep/999", {}),
        ("GET", "/v1/banks/entries/999", {}),
        ("PATCH", "/v1/banks/entries/999", {"json": {"enabled": False}}),
        ("DELETE", "/v1/banks/entries/999", {}),
    ]:
        r = client.request(method, path, headers=admin, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"


def test_adding_images_and_hashes(client, admin, bank, photos):
    r = client.post("/v1/banks/victims/entries", headers=admin, json={
        "image": b64(photos["astronaut"]), "external_id": "case-9/1",
        "takedown_case": "TD-9", "details": {"reporter": "victim"}})
    assert r.status_code == 201, r.text
    entry = r.json()
    expected = image_hashes(photos["astronaut"])
    assert (entry["pdq"], entry["md5"]) == (expected.pdq.hex, expected.md5)
    assert entry["quality"] == expected.pdq_quality and entry["status"] == "active"
    assert (entry["takedown_case"], entry["details"]) == ("TD-9", {"reporter": "victim"})

    dup = client.post("/v1/banks/victims/entries", headers=admin,
                      files={"image": ("a.jpg", photos["astronaut"], "image/jpeg")})
    assert dup.status_code == 409
    assert dup.json()["error"] == {"code": "duplicate_entry", "entry": entry["id"],
                                   "message": dup.json()["error"]["message"]}

    multipart = client.post("/v1/banks/victims/entries", headers=admin,
                            data={"details": '{"source": "form"}'},
                            files={"image": ("c.jpg", photos["coffee"], "image/jpeg")})
    assert multipart.status_code == 201 and multipart.json()["details"] == {"source": "form"}

    bare = client.post("/v1/banks/victims/entries", headers=admin,
                       json={"pdq": PDQ.upper(), "md5": MD5, "external_id": "x-1"})
    assert bare.status_code == 201, bare.text
    assert (bare.json()["pdq"], bare.json()["md5"], bare.json()["quality"]) == (PDQ, MD5, None)
    md5_only = client.post("/v1/banks/victims/entries", headers=admin, json={"md5": "0" * 32})
    assert md5_only.status_code == 201 and md5_only.json()["pdq"] is None

    page = client.get("/v1/banks/victims/entries?limit=2", headers=admin).json()
    assert len(page["entries"]) == 2 and page["next_after"] == page["entries"][-1]["id"]
    rest = client.get(f"/v1/banks/victims/entries?after={page['next_after']}",
                      headers=admin).json()
    assert len(rest["entries"]) == 2 and rest["next_after"] is None
    assert client.get("/v1/banks/victims", headers=admin).json()["active_entries"] == 4


@pytest.mark.parametrize(("kwargs", "code", "field", "words"), [
    ({"json": {"pdq": PDQ[:-1]}}, "invalid_hash", "pdq", "64 hex characters, got 63"),
    ({"json": {"pdq": PDQ[:10] + "g" + PDQ[11:]}}, "invalid_hash", "pdq", "character 10 is 'g'"),
    ({"json": {"pdq": " " + PDQ[1:]}}, "invalid_hash", "pdq", "character 0 is ' '"),
    ({"json": {"md5": "0x" + MD5[2:]}}, "invalid_hash", "md5", "character 1 is 'x'"),
    ({"json": {"md5": ""}}, "invalid_hash", "md5", "32 hex characters, got 0"),
    ({"json": {"pdq": 7}}, "invalid_body", "pdq", "valid string"),
    ({"json": {}}, "missing_image", "image", "send an image"),
    ({"json": {"image": b64(b"\x00" * 10), "pdq": PDQ}}, "ambiguous_entry", "image", "not both"),
    ({"json": {"image": "%%%"}}, "invalid_base64", "image", "base64"),
    ({"json": {"image": b64(b"junk")}}, "invalid_image", "image", "not an image"),
    ({"json": {"pdq": PDQ, "details": []}}, "invalid_body", "details", "an object"),
    ({"data": {"details": "[1]"}, "files": {"image": ("a", b"junk")}}, "invalid_details",
     "details", "JSON object"),
])
def test_malformed_entries_are_422_with_a_precise_message(client, admin, bank, kwargs, code,
                                                          field, words):
    r = client.post("/v1/banks/victims/entries", headers=admin, **kwargs)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == (code, field) and words in error["message"]


def test_disable_enable_remove_and_the_actor_of_every_change(client, admin, bank, gate, photos):
    entry = client.post("/v1/banks/victims/entries", headers=admin,
                        json={"image": b64(photos["hopper"])}).json()
    fp_md5 = entry["md5"]
    assert gate.banks.matcher.match(fp_md5, None)
    r = client.patch(f"/v1/banks/entries/{entry['id']}", headers=admin, json={"enabled": False})
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert gate.banks.matcher.match(fp_md5, None) == []
    client.patch(f"/v1/banks/entries/{entry['id']}", headers=admin, json={"enabled": True})
    r = client.delete(f"/v1/banks/entries/{entry['id']}?reason=appeal upheld", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "removed"
    assert gate.banks.matcher.match(fp_md5, None) == []
    # Kept in the record (the event log below), but gone for the API.
    assert client.get(f"/v1/banks/entries/{entry['id']}", headers=admin).status_code == 404
    gone = client.patch(f"/v1/banks/entries/{entry['id']}", headers=admin,
                        json={"enabled": True})
    assert gone.status_code == 404 and "removed" in gone.json()["error"]["message"]
    with gate.db.transaction() as s:
        events = s.execute(select(BankEvent.action, BankEvent.actor, BankEvent.details)
                           .order_by(BankEvent.id)).all()
    assert [(a, who) for a, who, _ in events] == [
        ("bank_created", "trust-ops"), ("entry_added", "trust-ops"),
        ("entry_disabled", "trust-ops"), ("entry_enabled", "trust-ops"),
        ("entry_removed", "trust-ops")]
    assert events[-1][2] == {"reason": "appeal upheld"}


def test_sweep_finds_copies_registered_before_the_image_was_banked(client, admin, bank, gate,
                                                                   photos):
    gate.check_upload(photos["coffee"], "u1", "post-1")
    gate.check_upload(photos["flower"], "u2", "post-2")
    entry = client.post("/v1/banks/victims/entries", headers=admin,
                        json={"image": b64(photos["coffee"])}).json()
    r = client.post(f"/v1/banks/victims/sweep/{entry['id']}", headers=admin)
    assert r.status_code == 200, r.text
    assert [(c["content_id"], c["distance"], c["account"]) for c in r.json()["copies"]] == \
        [("post-1", 0, "u1")]
    client.post("/v1/banks", headers=admin, json={"name": "other", "kind": "block",
                                                  "category": "other"})
    wrong_bank = client.post(f"/v1/banks/other/sweep/{entry['id']}", headers=admin)
    assert wrong_bank.status_code == 404
