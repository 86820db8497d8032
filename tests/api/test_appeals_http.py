"""Appeals over HTTP: the public endpoint and page, with the token a decision carries."""

from __future__ import annotations

import base64
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.store.models import ReviewItem


@pytest.fixture
def client(gate):
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def refused(client, gate, photos) -> dict:
    key = create_api_key(gate.db, "pipeline", [Scope.CHECK])[1]
    r = client.post("/v1/check/generation", headers={"Authorization": f"Bearer {key}"}, json={
        "prompt": "put her in a bikini", "account": "u1",
        "images": [base64.b64encode(photos["astronaut"]).decode()]})
    assert r.json()["decision"] == "block"
    return r.json()


def test_an_appeal_is_filed_once_with_the_decisions_token(client, gate, refused):
    appeal = refused["appeal"]
    assert appeal["url"].endswith(f"/appeals?token={appeal['token']}")
    r = client.post("/v1/appeals", json={"token": appeal["token"],
                                         "reason": "It is a photo of me, fully dressed."})
    assert r.status_code == 201, r.text
    reference = r.json()["reference"]
    with gate.db.transaction() as s:
        item = s.get(ReviewItem, int(reference.removeprefix("RV-")))
        assert (item.queue, item.kind, item.account_id) == ("appeals", "appeal", "u1")
    again = client.post("/v1/appeals", json={"token": appeal["token"],
                                             "reason": "Again: it is a photo of me."})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_appealed"
    forged = client.post("/v1/appeals", json={"token": "ap_" + "x" * 40 + ".y",
                                              "reason": "I did nothing wrong at all."})
    assert forged.status_code == 422 and forged.json()["error"]["field"] == "token"


def test_the_appeal_page_works_from_the_link_without_javascript(client, refused, gate):
    link = refused["appeal"]["url"].split("127.0.0.1:8000")[-1]
    page = client.get(link)
    assert page.status_code == 200 and refused["appeal"]["token"] in page.text
    for field in ("token", "reason", "contact"):
        assert re.search(rf'<label for="{field}"', page.text), field
    short = client.post("/appeals", data={"token": refused["appeal"]["token"], "reason": "no"})
    assert short.status_code == 422 and 'href="#reason"' in short.text
    done = client.post("/appeals", data={"token": refused["appeal"]["token"],
                                         "reason": "This is my own photo and I consent."})
    assert done.status_code == 201
    assert re.search(r'id="appeal-reference">RV-\d+<', done.text)
    with gate.db.transaction() as s:
        assert s.scalars(select(ReviewItem).where(ReviewItem.kind == "appeal")).one()
