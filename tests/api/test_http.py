"""The HTTP API as a platform's pipeline uses it: keys, JSON and multipart, errors."""

from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from consentry.access import Scope, create_api_key, revoke_api_key
from consentry.api.app import create_app


@pytest.fixture
def client(gate):
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def key(gate) -> str:
    return create_api_key(gate.db, "pipeline", [Scope.CHECK, Scope.ACCOUNTS_READ])[1]


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_requests_without_a_valid_key_are_refused(client, gate):
    body = {"prompt": "make it sepia"}
    missing = client.post("/v1/check/generation", json=body)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = client.post("/v1/check/generation", json=body, headers=auth("csk_nope"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    _, reader = create_api_key(gate.db, "dashboard", [Scope.ACCOUNTS_READ])
    scoped = client.post("/v1/check/generation", json=body, headers={"X-API-Key": reader})
    assert scoped.status_code == 403 and "check" in scoped.json()["error"]["message"]


def test_revoked_keys_stop_working(client, gate):
    key_id, secret = create_api_key(gate.db, "old", [Scope.CHECK])
    revoke_api_key(gate.db, key_id)
    r = client.post("/v1/check/generation", json={"prompt": "a red apple"}, headers=auth(secret))
    assert r.status_code == 401


def test_json_request_with_a_base64_photo(client, key, photos):
    r = client.post("/v1/check/generation", headers=auth(key), json={
        "prompt": "put her in a bikini", "images": [b64(photos["astronaut"])],
        "account": "u1"})
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert (verdict["decision"], verdict["policy"]["clause"]) == ("block", "II-1")
    assert verdict["policy"]["version"] and verdict["id"].startswith("chk_")
    assert verdict["explanation"] and verdict["reasons"]
    assert verdict["account"] == {"id": "u1", "status": "active", "active_strikes": 1,
                                  "suspended_until": None, "suspension_clause": None}


def test_multipart_request_with_a_photo_file(client, key, photos):
    r = client.post("/v1/check/generation", headers=auth(key),
                    data={"prompt": "put her in a winter coat", "account": "u2"},
                    files=[("images", ("a.jpg", photos["astronaut"], "image/jpeg"))])
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "allow"


def test_account_standing_endpoint(client, key, photos):
    for _ in range(3):
        client.post("/v1/check/generation", headers=auth(key), json={
            "prompt": "remove her clothes", "images": [b64(photos["astronaut"])],
            "account": "u3"})
    r = client.get("/v1/accounts/u3", headers=auth(key))
    assert r.status_code == 200
    assert r.json()["status"] == "suspended" and r.json()["active_strikes"] == 3


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"prompt": ""}, 422, "empty_prompt"),
    ({"prompt": "x" * 4001}, 422, "prompt_too_long"),
    ({"images": []}, 422, "invalid_body"),
    ({"prompt": "hat", "images": ["not base64!"]}, 422, "invalid_base64"),
    ({"prompt": "hat", "images": [b64(b"GIF89a truncated")]}, 422, "invalid_image"),
    ({"prompt": "hat", "images": [b64(b"x")] * 5}, 422, "too_many_images"),
    ({"prompt": "hat", "surprise": 1}, 422, "invalid_body"),
])
def test_bad_input_gets_a_json_error_naming_the_problem(client, key, body, status, code):
    r = client.post("/v1/check/generation", json=body, headers=auth(key))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


def test_oversized_image_is_413(client, key):
    buf = io.BytesIO()
    Image.new("L", (9000, 5000)).save(buf, "PNG")
    r = client.post("/v1/check/generation", headers=auth(key),
                    json={"prompt": "hat", "images": [b64(buf.getvalue())]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"


def test_openapi_is_the_contract(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/check/generation"]["post"]
    assert set(op["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "/v1/accounts/{account_id}" in spec["paths"]


def test_a_thread_carries_context_over_json_and_multipart(client, key, photos):
    first = client.post("/v1/check/generation", headers=auth(key), json={
        "prompt": "put her in a bikini", "images": [b64(photos["astronaut"])],
        "thread": "conv-9"})
    assert first.json()["decision"] == "block"
    more = client.post("/v1/check/generation", headers=auth(key),
                       data={"prompt": "more", "thread": "conv-9"},
                       files=[("images", ("a.jpg", photos["astronaut"], "image/jpeg"))])
    assert more.status_code == 200, more.text
    verdict = more.json()
    assert (verdict["decision"], verdict["policy"]["clause"]) == ("block", "II-1")
    cont = [r for r in verdict["reasons"] if r["code"] == "thread_continuation"]
    assert cont and cont[0]["checks"] == [first.json()["id"]]
    alone = client.post("/v1/check/generation", headers=auth(key), json={
        "prompt": "more", "images": [b64(photos["astronaut"])]})
    assert alone.json()["decision"] == "allow"
