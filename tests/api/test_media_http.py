"""POST /v1/check/upload and /v1/check/output as a platform calls them: JSON and
multipart, keys and scopes, bank matches, errors, idempotent retries."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.banks.services import entry_hashes
from consentry.signals.hashing import fingerprint


@pytest.fixture
def client(gate):
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def key(gate) -> str:
    return create_api_key(gate.db, "uploads", [Scope.CHECK])[1]


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_both_endpoints_need_a_key_with_the_check_scope(client, gate, photos):
    body = {"image": b64(photos["coffee"])}
    for path in ("/v1/check/upload", "/v1/check/output"):
        assert client.post(path, json=body).status_code == 401
        assert client.post(path, json=body, headers=auth("csk_unknown")).status_code == 401
    _, banker = create_api_key(gate.db, "bank-admin", [Scope.BANKS])
    for path in ("/v1/check/upload", "/v1/check/output"):
        r = client.post(path, json=body, headers=auth(banker))
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


def test_an_ordinary_upload_is_allowed_and_joins_the_content_index(client, key, gate, photos):
    r = client.post("/v1/check/upload", headers=auth(key), json={
        "image": b64(photos["coffee"]), "account": "u1", "content_id": "post-1",
        "url": "https://example.social/p/1"})
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert (verdict["kind"], verdict["decision"]) == ("upload", "allow")
    assert verdict["account"]["id"] == "u1"
    record = gate.banks.content.get("post-1")
    assert record is not None and record.url == "https://example.social/p/1"


def test_a_banked_image_is_blocked_as_a_multipart_upload(client, key, gate, photos):
    gate.banks.registry.create("ncmec", "block", "csam")
    entry = gate.banks.registry.add_entry("ncmec", entry_hashes(fingerprint(photos["china"])))
    r = client.post("/v1/check/upload", headers=auth(key),
                    data={"account": "u2", "content_id": "post-2"},
                    files={"image": ("x.jpg", photos["china"], "image/jpeg")})
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert (verdict["decision"], verdict["policy"]["clause"]) == ("block", "KM-1")
    match = next(x for x in verdict["reasons"] if x["code"] == "hash_match")
    assert match["bank"] == "ncmec" and match["distance"] == 0
    assert str(entry.id) in match["detail"]
    assert gate.banks.content.get("post-2") is None  # refused content is not registered


def test_output_check_json_and_multipart(client, key, photos):
    gen = client.post("/v1/check/generation", headers=auth(key), json={
        "prompt": "put her in a winter coat", "images": [b64(photos["astronaut"])],
        "account": "u3"}).json()
    assert gen["decision"] == "allow"
    r = client.post("/v1/check/output", headers=auth(key),
                    json={"image": b64(photos["flower"]), "generation_id": gen["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "output" and r.json()["account"]["id"] == "u3"
    r = client.post("/v1/check/output", headers=auth(key),
                    files={"image": ("o.jpg", photos["flower"], "image/jpeg")})
    assert r.status_code == 200 and r.json()["decision"] == "allow"


def test_idempotency_key_returns_the_same_verdict(client, key, photos):
    body = {"image": b64(photos["coffee"]), "account": "u4"}
    headers = {**auth(key), "Idempotency-Key": "upload-77"}
    first = client.post("/v1/check/upload", headers=headers, json=body).json()
    again = client.post("/v1/check/upload", headers=headers, json=body).json()
    assert first["id"] == again["id"]


@pytest.mark.parametrize(("path", "kwargs", "status", "code", "field"), [
    ("/v1/check/upload", {"json": {"image": "not base64!"}}, 422, "invalid_base64", "image"),
    ("/v1/check/upload", {"json": {"image": b64(b"junk")}}, 422, "invalid_image", "image"),
    ("/v1/check/upload", {"json": {}}, 422, "invalid_body", "image"),
    ("/v1/check/upload", {"json": {"image": "", "colour": "red"}}, 422, "invalid_body",
     "colour"),
    ("/v1/check/upload", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 422,
     "unsupported_media_type", "body"),
    ("/v1/check/upload", {"data": {"account": "u"}, "files": {"other": ("a", b"1")}}, 422,
     "missing_image", "image"),
    ("/v1/check/output", {"json": {"image": b64(b"\x89PNG\r\n\x1a\n")}}, 422, "invalid_image",
     "image"),
    ("/v1/check/output", {"data": {"image": "text, not a file"}, "files": {"x": ("a", b"1")}},
     422, "invalid_image", "image"),
])
def test_bad_input_is_a_json_error_never_a_verdict(client, key, path, kwargs, status, code,
                                                   field):
    headers = {**auth(key), **kwargs.pop("headers", {})}
    r = client.post(path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["field"] == field
