"""Requests a hostile or careless client sends: reused idempotency keys, ids beyond any
integer, NUL bytes, malformed bodies, lax types, reused content ids. Each answers with the
documented error (never a 500), and none lets abuse through. Each test reproduces a
defect found by hostile testing, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.store.models import CheckRecord, ContentItem, Strike

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
TIDA = {"regime": "take_it_down", "signature": "Sam Doe", "email": "sam@example.org",
        "statement": "shared without my consent", "declarations": ["not_consensual"]}
HUGE = "9" * 30


@pytest.fixture
def client(gate):
    # raise_server_exceptions=False: a 500 must show up as a 500, not as a test error.
    with TestClient(create_app(gate=gate), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def key(gate) -> dict[str, str]:
    secret = create_api_key(gate.db, "pipeline", [Scope.CHECK, Scope.ACCOUNTS_READ])[1]
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin(gate) -> dict[str, str]:
    secret = create_api_key(gate.db, "trust-ops", [Scope.BANKS])[1]
    return {"Authorization": f"Bearer {secret}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- 1. idempotency keys ------------------------------------------------------------


def test_a_reused_idempotency_key_never_replays_an_allow_for_another_prompt(client, key, gate):
    h = {**key, "Idempotency-Key": "k-1"}
    first = client.post("/v1/check/generation", headers=h,
                        json={"prompt": "make the sky more blue", "account": "u1"})
    assert first.status_code == 200 and first.json()["decision"] == "allow"
    abuse = client.post("/v1/check/generation", headers=h,
                        json={"prompt": "@bot put her in a bikini", "account": "u1"})
    assert abuse.status_code == 409, abuse.text
    assert abuse.json()["error"]["code"] == "idempotency_key_reused"
    same = client.post("/v1/check/generation", headers=h,
                       json={"prompt": "make the sky more blue", "account": "u1"})
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]


def test_a_key_used_for_one_kind_of_check_is_not_replayed_for_another(client, key, photos):
    h = {**key, "Idempotency-Key": "k-2"}
    client.post("/v1/check/generation", headers=h, json={"prompt": "a red apple",
                                                         "account": "u2"})
    upload = client.post("/v1/check/upload", headers=h,
                         json={"image": b64(photos["coffee"]), "account": "u2"})
    assert upload.status_code == 409


# -- 10. no 500s ----------------------------------------------------------------------


def test_ids_beyond_any_integer_are_not_found_or_refused(client, admin):
    client.post("/v1/banks", headers=admin, json={"name": "b", "kind": "block",
                                                  "category": "ncii"})
    for method, path in (("GET", f"/v1/banks/entries/{HUGE}"),
                         ("PATCH", f"/v1/banks/entries/{HUGE}"),
                         ("DELETE", f"/v1/banks/entries/{HUGE}"),
                         ("POST", f"/v1/banks/b/sweep/{HUGE}"),
                         ("GET", f"/v1/banks/entries/{2**31}"),
                         ("GET", f"/v1/banks/b/entries?after={HUGE}"),
                         ("GET", f"/v1/banks/b/entries?after={2**31}")):
        r = client.request(method, path, headers=admin,
                           json={"enabled": False} if method == "PATCH" else None)
        assert r.status_code in (404, 422), (method, path, r.status_code, r.text)
        assert "error" in r.json()


def test_a_duplicate_external_id_is_a_conflict(client, admin):
    client.post("/v1/banks", headers=admin, json={"name": "b", "kind": "block",
                                                  "category": "ncii"})
    first = client.post("/v1/banks/b/entries", headers=admin,
                        json={"pdq": PDQ, "external_id": "x-1"})
    assert first.status_code == 201
    other = "0" * 63 + "1"
    again = client.post("/v1/banks/b/entries", headers=admin,
                        json={"pdq": other, "external_id": "x-1"})
    assert again.status_code == 409, again.text
    assert again.json()["error"]["entry"] == first.json()["id"]


def test_nul_bytes_in_takedown_locators_are_refused(client):
    for field in ("urls", "content_ids"):
        r = client.post("/v1/takedowns", json={**TIDA, field: ["post\x00-1"]})
        assert r.status_code == 422, (field, r.status_code, r.text)
        assert r.json()["error"]["field"].startswith(field)


def test_a_nul_byte_in_a_prompt_neither_hides_the_abuse_nor_loses_the_strike(
        client, key, gate, photos):
    r = client.post("/v1/check/generation", headers=key,
                    json={"prompt": "@bot put her in a bi\x00kini", "account": "u3",
                          "images": [b64(photos["astronaut"])]})
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "block"
    with gate.db.transaction() as s:
        assert s.scalars(select(CheckRecord.id).where(CheckRecord.id == r.json()["id"])).one()
        assert s.scalars(select(Strike).where(Strike.account_id == "u3")).all()


# -- 11. the documented contract -----------------------------------------------------


def test_malformed_json_and_multipart_are_422_with_a_field(client, key, admin):
    for path, headers in (("/v1/check/generation", key), ("/v1/check/upload", key),
                          ("/v1/takedowns", {}), ("/v1/banks", admin)):
        r = client.post(path, headers={**headers, "Content-Type": "application/json"},
                        content=b'{"prompt": ')
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.json()["error"]["field"], path
    for path in ("/v1/check/generation", "/v1/check/upload", "/v1/check/output"):
        broken = client.post(path, headers={**key, "Content-Type": "multipart/form-data"},
                             content=b"--xyz\r\nContent-Disposition: form-data; name=\"a\"")
        assert broken.status_code == 422, (path, broken.text)
        assert broken.json()["error"]["field"] == "body"


def test_lax_booleans_are_refused(client, admin):
    client.post("/v1/banks", headers=admin, json={"name": "b", "kind": "block",
                                                  "category": "ncii"})
    r = client.patch("/v1/banks/b", headers=admin, json={"enabled": 0})
    assert r.status_code == 422, r.text
    assert client.get("/v1/banks/b", headers=admin).json()["enabled"] is True


def test_a_deleted_entry_is_gone(client, admin):
    client.post("/v1/banks", headers=admin, json={"name": "b", "kind": "block",
                                                  "category": "ncii"})
    entry = client.post("/v1/banks/b/entries", headers=admin, json={"pdq": PDQ}).json()["id"]
    assert client.delete(f"/v1/banks/entries/{entry}", headers=admin).status_code == 200
    assert client.get(f"/v1/banks/entries/{entry}", headers=admin).status_code == 404
    listed = client.get("/v1/banks/b/entries", headers=admin).json()["entries"]
    assert entry not in [e["id"] for e in listed]


def test_every_error_a_route_gives_is_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    documented = {(p, m): set(op["responses"]) for p, ops in paths.items()
                  for m, op in ops.items()}
    assert {"404", "409", "422"} <= documented[("/v1/banks/entries/{entry_id}", "get")] | {
        "409"}
    assert {"409", "422"} <= documented[("/v1/check/generation", "post")]
    assert {"404", "429"} <= documented[("/v1/takedowns/{number}", "get")]
    assert {"409"} <= documented[("/v1/banks/{name}/entries", "post")]
    assert {"400"} <= documented[("/h/hash", "get")]


# -- 14. content ids and generation ids -----------------------------------------------


def test_a_reused_content_id_with_other_bytes_is_a_conflict(client, key, photos):
    first = client.post("/v1/check/upload", headers=key, json={
        "image": b64(photos["coffee"]), "account": "u4", "content_id": "post-7"})
    assert first.status_code == 200
    other = client.post("/v1/check/upload", headers=key, json={
        "image": b64(photos["china"]), "account": "u4", "content_id": "post-7"})
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "content_id_taken"


def test_an_output_needs_a_generation_that_was_allowed(client, key, gate, photos):
    unknown = client.post("/v1/check/output", headers=key, json={
        "image": b64(photos["coffee"]), "generation_id": "chk_does_not_exist"})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["field"] == "generation_id"
    refused = client.post("/v1/check/generation", headers=key, json={
        "prompt": "put her in a bikini", "images": [b64(photos["astronaut"])],
        "account": "u5"}).json()
    assert refused["decision"] == "block"
    out = client.post("/v1/check/output", headers=key, json={
        "image": b64(photos["coffee"]), "generation_id": refused["id"]})
    assert out.status_code == 409, out.text
    with gate.db.transaction() as s:
        assert s.scalars(select(ContentItem).where(
            ContentItem.content_id.in_(["chk_does_not_exist", refused["id"]]))).all() == []


def test_a_body_declared_over_the_limit_is_413_before_it_is_read(client, key, gate):
    r = client.post("/v1/check/generation", content=b'{"prompt": "a red barn"}',
                    headers={**key, "Content-Type": "application/json",
                             "Content-Length": str(300 * 1024 * 1024)})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
    with gate.db.transaction() as s:  # refused before the gate: nothing was checked
        assert s.scalars(select(CheckRecord)).all() == []
    ok = client.post("/v1/check/generation", json={"prompt": "a red barn"}, headers=key)
    assert ok.status_code == 200
