"""The takedown channel over HTTP: the public JSON endpoint, the requester's status by
case number + PIN, the case workers' endpoints, and the public pages without JavaScript."""

from __future__ import annotations

import base64
import re

import pytest
from fastapi.testclient import TestClient
from removal_platform import SECRET

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.banks.services import entry_hashes
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.signals.hashing import fingerprint

TIDA = {"regime": "take_it_down", "signature": "Sam Doe", "email": "sam@example.org",
        "statement": "shared without my consent", "declarations": ["not_consensual"]}


@pytest.fixture
def service(gate, tmp_path, platform, clock):
    callback = PlatformCallback(platform.url, SECRET)
    svc = TakedownService(gate.db, gate.banks, gate.policy, callback=callback, clock=clock,
                          sender=OutboxSender(tmp_path / "outbox"))
    yield svc
    callback.close()


@pytest.fixture
def client(gate, service):
    with TestClient(create_app(gate=gate, takedowns=service)) as c:
        yield c


@pytest.fixture
def posted(gate, photos):
    gate.banks.content.register("post-1", "upload", entry_hashes(fingerprint(photos["hopper"])),
                                account_id="uploader-1", url="https://social.example/p/1")


def test_public_request_then_status_with_pin(client, posted, platform):
    r = client.post("/v1/takedowns", json={**TIDA, "urls": ["https://social.example/p/1"]})
    assert r.status_code == 201, r.text
    body = r.json()
    # Answered once located and banked; the callbacks run right after the answer.
    assert body["complete"] and body["case"]["status"] == "located"
    assert body["case"]["items_found"] == 1
    assert platform.removed == {"post-1"}
    number, pin = body["case"]["case"], body["pin"]
    status = client.get(f"/v1/takedowns/{number}", headers={"X-Case-PIN": pin})
    assert status.status_code == 200 and status.json()["items_removed"] == 1
    assert "located" not in status.json()  # no uploader or content ids for the public
    wrong = client.get(f"/v1/takedowns/{number}", headers={"X-Case-PIN": "12345678"})
    unknown = client.get("/v1/takedowns/TD-ABCDEFGHJK", headers={"X-Case-PIN": pin})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()


def test_incomplete_request_is_answered_with_what_is_missing(client):
    r = client.post("/v1/takedowns", json={"regime": "uk_intimate_image",
                                           "urls": ["https://social.example/p/9"]})
    assert r.status_code == 201
    missing = {m["field"] for m in r.json()["case"]["missing"]}
    assert {"contact", "relationship", "declaration:intimate"} <= missing
    assert r.json()["case"]["status"] == "incomplete" and not r.json()["complete"]


def test_requester_completes_a_request_and_appeals_a_rejection(client, gate, posted):
    first = client.post("/v1/takedowns", json={"regime": "take_it_down",
                                               "content_ids": ["post-1"]}).json()
    number, pin = first["case"]["case"], first["pin"]
    done = client.post(f"/v1/takedowns/{number}/amend", headers={"X-Case-PIN": pin},
                       json={**TIDA, "content_ids": ["elsewhere"]})
    assert done.status_code == 200 and done.json()["case"]["status"] == "received"
    again = client.post(f"/v1/takedowns/{number}/amend", headers={"X-Case-PIN": pin},
                        json={**TIDA, "content_ids": ["post-1"]})
    assert again.status_code == 409
    _, worker = create_api_key(gate.db, "worker", [Scope.CASES])
    client.post(f"/v1/takedowns/{number}/reject", headers={"X-API-Key": worker},
                json={"reasons": ["we could not find this post"]})
    wrong_pin = client.post(f"/v1/takedowns/{number}/appeal",
                            headers={"X-Case-PIN": "99999999"}, json={"reason": "look again"})
    assert wrong_pin.status_code == 404
    appealed = client.post(f"/v1/takedowns/{number}/appeal", headers={"X-Case-PIN": pin},
                           json={"reason": "it is post-1"})
    assert appealed.status_code == 200 and appealed.json()["status"] == "appealed"


def test_bad_input_gets_precise_errors(client):
    bad_regime = client.post("/v1/takedowns", json={**TIDA, "regime": "nope"})
    assert bad_regime.status_code == 422 and bad_regime.json()["error"]["field"].endswith("regime")
    not_image = client.post("/v1/takedowns", json={**TIDA, "images": [
        base64.b64encode(b"not an image").decode()]})
    assert not_image.status_code == 422
    assert not_image.json()["error"]["code"] == "invalid_image"
    bad_b64 = client.post("/v1/takedowns", json={**TIDA, "images": ["%%%"]})
    assert bad_b64.json()["error"]["code"] == "invalid_base64"
    bad_hash = client.post("/v1/takedowns", json={**TIDA, "pdq_hashes": ["xyz"]})
    assert {m["field"] for m in bad_hash.json()["case"]["missing"]} == {"hashes"}


def test_pin_guessing_is_locked_per_case_and_throttled_per_client(client, posted):
    body = client.post("/v1/takedowns", json={**TIDA, "content_ids": ["post-1"]}).json()
    number = body["case"]["case"]
    codes = [client.get(f"/v1/takedowns/{number}", headers={"X-Case-PIN": f"{i:08d}"})
             .status_code for i in range(6)]
    assert codes == [404] * 5 + [429]
    right = client.get(f"/v1/takedowns/{number}", headers={"X-Case-PIN": body["pin"]})
    assert right.status_code == 429  # locked, even for the right PIN
    for i in range(20):
        client.get("/v1/takedowns/TD-ABCDEFGHJK", headers={"X-Case-PIN": f"{i:08d}"})
    throttled = client.get("/v1/takedowns/TD-ABCDEFGHJK", headers={"X-Case-PIN": "1"})
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "too_many_attempts"


def test_case_worker_endpoints_need_the_cases_scope(client, gate, clock):
    body = client.post("/v1/takedowns", json={**TIDA, "content_ids": ["gone"]}).json()
    number = body["case"]["case"]
    assert client.get("/v1/takedowns?due=open").status_code == 401
    _, checker = create_api_key(gate.db, "checker", [Scope.CHECK])
    assert client.get("/v1/takedowns", headers={"X-API-Key": checker}).status_code == 403
    _, worker = create_api_key(gate.db, "worker", [Scope.CASES])
    h = {"X-API-Key": worker}
    clock.advance(hours=44)
    listed = client.get("/v1/takedowns?due=at_risk", headers=h).json()
    assert [c["case"] for c in listed["cases"]] == [number]
    assert listed["cases"][0]["due"] == "at_risk" and listed["sla"]["open"] == 1
    assert client.get("/v1/takedowns?due=soon", headers=h).status_code == 422
    record = client.get(f"/v1/takedowns/{number}/record", headers=h).json()
    assert record["not_found"] == ["gone"] and record["events"][0]["kind"] == "received"
    rejected = client.post(f"/v1/takedowns/{number}/reject", headers=h,
                           json={"reasons": ["not on this platform"]})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = client.post(f"/v1/takedowns/{number}/reverse", headers=h, json={"reason": "x"})
    assert again.status_code == 409


def test_the_public_form_works_without_javascript(client, posted, photos, platform):
    page = client.get("/takedown")
    assert page.status_code == 200
    html = page.text
    for field in ("regime", "urls", "image", "email", "signature", "statement"):
        assert re.search(rf'<label for="[^"]*{field}[^"]*"', html), field
    r = client.post("/takedown", data={**{k: v for k, v in TIDA.items() if k != "declarations"},
                                       "declarations": "not_consensual"},
                    files={"image": ("me.jpg", photos["hopper"], "image/jpeg")})
    assert r.status_code == 201, r.text
    number = re.search(r'id="case-number">(TD-[0-9A-Z]+)<', r.text).group(1)
    pin = re.search(r'id="case-pin">(\d{8})<', r.text).group(1)
    assert platform.removed == {"post-1"}
    status = client.post("/takedown/status", data={"case_number": number, "pin": pin})
    assert status.status_code == 200 and "Removed" in status.text and pin not in status.text
    wrong = client.post("/takedown/status", data={"case_number": number, "pin": "0"})
    assert wrong.status_code == 404 and "No case with that number and PIN" in wrong.text


def test_the_form_explains_an_incomplete_request_and_a_bad_upload(client):
    missing_regime = client.post("/takedown", data={"urls": "https://social.example/p/1"})
    assert missing_regime.status_code == 422
    assert "Choose which law" in missing_regime.text
    assert 'value="https://social.example/p/1"' in missing_regime.text or \
        "https://social.example/p/1</textarea>" in missing_regime.text
    bad = client.post("/takedown", data={"regime": "take_it_down"},
                      files={"image": ("x.jpg", b"not an image", "image/jpeg")})
    assert bad.status_code == 422 and "image 1" in bad.text
    partial = client.post("/takedown", data={"regime": "take_it_down",
                                             "urls": "https://social.example/p/1"})
    assert partial.status_code == 201 and "We need a little more" in partial.text
    assert "signature" in partial.text.lower()


def test_an_incomplete_request_is_completed_on_the_form_with_the_pin(client, posted, platform):
    partial = client.post("/takedown", data={"regime": "take_it_down",
                                             "urls": "https://social.example/p/1"})
    number = re.search(r'id="case-number">(TD-[0-9A-Z]+)<', partial.text).group(1)
    pin = re.search(r'id="case-pin">(\d{8})<', partial.text).group(1)
    form = client.get(f"/takedown?case={number}")
    assert f'name="case_number" value="{number}"' in form.text
    fields = {"regime": "take_it_down", "urls": "https://social.example/p/1",
              "signature": "Sam Doe", "email": "sam@example.org",
              "statement": "shared without my consent", "declarations": "not_consensual",
              "case_number": number}
    wrong = client.post("/takedown", data={**fields, "pin": "00000000"})
    assert wrong.status_code == 404 and "no case with that number and PIN" in wrong.text
    assert platform.removed == set()  # nothing acted on without the PIN
    done = client.post("/takedown", data={**fields, "pin": pin})
    assert done.status_code == 201 and "We have your request" in done.text
    assert number in done.text and platform.removed == {"post-1"}


def test_one_client_cannot_flood_the_channel(client):
    codes = [client.post("/v1/takedowns", json={**TIDA, "content_ids": [f"p-{i}"]}).status_code
             for i in range(31)]
    assert codes == [201] * 30 + [429]
    page = client.post("/takedown", data={"regime": "take_it_down", "urls": "https://x.example/1"})
    assert page.status_code == 429 and "too many takedown requests" in page.text


def test_an_oversized_image_is_refused_with_413(client):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, "PNG")  # 48 megapixels, small file
    r = client.post("/v1/takedowns", json={**TIDA, "images": [
        base64.b64encode(buf.getvalue()).decode()]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"
