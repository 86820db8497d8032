"""A victim's TAKE IT DOWN request, end to end over HTTP.

A platform holds 1,000 registered items. Three of them are copies of one intimate image
(stand-in: a real photograph), uploaded by three accounts: one re-encoded, one resized,
one mirrored. The person shown files a complete TAKE IT DOWN request naming one copy by
its URL. All three are removed through the platform's signed callback, the image is
banked under II-3 so that a fourth copy is refused on upload, the requester and every
uploader are told, and the case closes well inside its 48 hours.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from removal_platform import SECRET
from sqlalchemy import func, select

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.banks.registry import EntryHashes
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.store.models import ContentItem

ITEMS = 1000


def jpeg(img: Image.Image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def client(gate, platform, outbox):
    # The takedown service keeps real time, so the case's time to removal is measured.
    callback = PlatformCallback(platform.url, SECRET)
    takedowns = TakedownService(gate.db, gate.banks, gate.policy, sender=OutboxSender(outbox),
                                callback=callback)
    with TestClient(create_app(gate=gate, takedowns=takedowns)) as c:
        yield c
    callback.close()


def test_take_it_down_request_removes_every_copy(client, gate, platform, outbox, photos):
    _, uploads_key = create_api_key(gate.db, "uploads", [Scope.CHECK])
    platform_auth = {"X-API-Key": uploads_key}
    original = Image.open(io.BytesIO(photos["hopper"])).convert("RGB")

    # The platform: three copies of the image, uploaded through the gate by three people...
    copies = {
        "reencoded": jpeg(original, 55),
        "resized": jpeg(original.resize((original.width // 2, original.height // 2))),
        "mirrored": jpeg(ImageOps.mirror(original)),
    }
    for n, (name, data) in enumerate(copies.items()):
        r = client.post("/v1/check/upload", headers=platform_auth, json={
            "image": b64(data), "account": f"uploader-{n}", "content_id": f"post-{name}",
            "url": f"https://social.example/p/{name}"})
        assert r.status_code == 200 and r.json()["decision"] == "allow", r.text
    # ...among other real photos and the rest of the 1,000 items.
    for name in ("astronaut", "coffee", "china", "flower"):
        r = client.post("/v1/check/upload", headers=platform_auth, json={
            "image": b64(photos[name]), "account": "bystander", "content_id": f"post-{name}"})
        assert r.json()["decision"] == "allow"
    rng = np.random.default_rng(7)
    for i in range(ITEMS - 7):
        gate.banks.content.register(
            f"post-{i:04d}", "upload", EntryHashes(md5=rng.bytes(16).hex(),
                                                   pdq=rng.bytes(32).hex()),
            account_id=f"user-{i % 97}", url=f"https://social.example/p/{i:04d}")
    with gate.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ContentItem)) == ITEMS

    # The person shown asks for it to be taken down, naming one copy by its link.
    r = client.post("/v1/takedowns", json={
        "regime": "take_it_down", "urls": ["https://social.example/p/resized"],
        "requester_name": "Grace", "email": "grace@example.org", "signature": "Grace H.",
        "declarations": ["not_consensual"],
        "statement": "This picture of me was posted without my consent."})
    assert r.status_code == 201, r.text
    submitted = r.json()
    case, pin = submitted["case"]["case"], submitted["pin"]

    # Every copy removed through the signed callback, and nothing else.
    assert {c.content_id for c in platform.received if c.action == "remove"} == {
        "post-reencoded", "post-resized", "post-mirrored"}
    assert platform.bad_signatures == 0

    # The requester's status page: closed, well inside 48 hours.
    status = client.get(f"/v1/takedowns/{case}", headers={"X-Case-PIN": pin}).json()
    assert status["status"] == "removed"
    assert (status["items_removed"], status["copies_found"]) == (3, 2)
    _, worker_key = create_api_key(gate.db, "case-workers", [Scope.CASES])
    record = client.get(f"/v1/takedowns/{case}/record",
                        headers={"X-API-Key": worker_key}).json()
    assert record["time_to_removal_s"] < 60
    assert {e["details"]["account"] for e in record["events"] if e["kind"] == "struck"} == {
        "uploader-0", "uploader-1", "uploader-2"}

    # Banked under II-3: a fourth copy (cropped and re-encoded) is refused on upload.
    fourth = jpeg(original.crop((10, 10, original.width - 10, original.height - 10)), 70)
    r = client.post("/v1/check/upload", headers=platform_auth, json={
        "image": b64(fourth), "account": "uploader-4", "content_id": "post-again"})
    verdict = r.json()
    assert (verdict["decision"], verdict["policy"]["clause"]) == ("block", "II-3"), verdict
    assert any(reason.get("bank") == "takedowns" for reason in verdict["reasons"])

    # The requester and each uploader were told.
    messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in sorted(outbox.glob("*.eml"))]
    to_requester = [m for m in messages if m["To"] == "grace@example.org"]
    assert [m["X-Consentry-Kind"] for m in to_requester] == ["request_received",
                                                              "content_removed"]
    removed_body = to_requester[-1].get_content()
    assert "3" in removed_body and pin not in removed_body
    statements = {m["X-Consentry-Recipient"]: m.get_content() for m in messages
                  if m["X-Consentry-Kind"] == "statement_of_reasons"}
    assert set(statements) == {"account:uploader-0", "account:uploader-1",
                               "account:uploader-2"}
    assert all("II-3" in body and "TAKE IT DOWN" in body and "14 days" in body
               for body in statements.values())
