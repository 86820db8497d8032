"""/v1/likeness/{account_id} as a platform calls it: enrol from multipart photos, read the
one entry, change its setting, withdraw; bad photos and a second enrolment of the same
face are refused with clear messages; no route lists or searches the registry."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from likeness_photos import enrolment_photos

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app


@pytest.fixture
def client(gate):
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def key(gate) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(gate.db, 'p', [Scope.LIKENESS])[1]}"}


def files(*photos: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photos", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]


def test_enrol_read_change_and_withdraw(client, key, gate, photos):
    sent = enrolment_photos(photos["astronaut"])
    r = client.post("/v1/likeness/alice", headers=key, files=files(*sent),
                    data={"no_edits": "true"})
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["status"] == "active" and entry["photo_count"] == 2
    assert entry["settings"] == {"never_sexualise": True, "no_edits": True}
    assert "embedding" not in r.text and "vector" not in r.text

    assert client.get("/v1/likeness/alice", headers=key).json()["id"] == entry["id"]
    assert client.get("/v1/likeness/bob", headers=key).status_code == 404
    r = client.patch("/v1/likeness/alice", headers=key, json={"no_edits": False})
    assert r.json()["settings"]["no_edits"] is False
    r = client.patch("/v1/likeness/alice", headers=key, json={"no_edits": "maybe"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "no_edits"

    r = client.post("/v1/likeness/mallory", headers=key, files=files(*sent))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "likeness_held_for_review"

    r = client.delete("/v1/likeness/alice", headers=key)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert client.get("/v1/likeness/alice", headers=key).status_code == 404
    assert len(gate.likeness) == 0


def test_bad_photos_are_refused_with_the_photo_named(client, key, photos):
    sent = enrolment_photos(photos["astronaut"])
    r = client.post("/v1/likeness/alice", headers=key, files=files(sent[0], photos["coffee"]))
    assert r.status_code == 422
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("no_clear_face", "photos[1]")
    assert "no clear face" in error["message"]
    r = client.post("/v1/likeness/alice", headers=key, files=files(sent[0]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "photo_count"
    r = client.post("/v1/likeness/alice", headers=key, json={})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


def test_only_likeness_keys_reach_the_registry_and_nothing_lists_it(client, gate, photos):
    check = {"Authorization": f"Bearer {create_api_key(gate.db, 'c', [Scope.CHECK])[1]}"}
    assert client.get("/v1/likeness/alice").status_code == 401
    assert client.get("/v1/likeness/alice", headers=check).status_code == 403
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {p for p in paths if p.startswith("/v1/likeness")} == {"/v1/likeness/{account_id}"}
