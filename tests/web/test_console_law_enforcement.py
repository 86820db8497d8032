"""The console's law-enforcement pages (TestClient, both databases): only child-safety
reviewers and admins reach them; recording a request places the hold the CLI places and
the audit chain still verifies; a disclosure comes back as a download that opens with its
passphrase and holds the account's evidence; bad input is refused with a clear message and
changes nothing; the passphrase is never written back or logged."""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from counting_passwords import PASSWORD, SECRET_KEY, CountingPasswords
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from consentry.api.app import create_app
from consentry.audit.verify import verify
from consentry.config import Settings
from consentry.gate import Gate
from consentry.people import People
from consentry.people.directory import Directory
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox
from consentry.reporting.law_enforcement import open_package
from consentry.store.models import AuditRecord, EvidenceHold, LawEnforcementRequest
from consentry.web.console_law_enforcement import countdown

PASSPHRASE = "amber kettle river stone"
CONTENT = b"\xff\xd8 the sealed upload of acct-7"
STAFF = {"cara": "child_safety", "ada": "admin", "mia": "moderator", "cora": "compliance",
         "lee": "lead"}


@pytest.fixture
def world(db, clock, tmp_path) -> Iterator[tuple[Gate, TestClient]]:
    clock.now = datetime.now(UTC).replace(microsecond=0)
    people = People(Directory(db, secrets=SecretBox(lambda: SECRET_KEY),
                              passwords=CountingPasswords(), clock=clock),
                    Sessions(db, clock=clock))
    for name, role in STAFF.items():
        people.directory.create(name, roles=[role], password=PASSWORD)
    gate = Gate(db, settings=Settings(data_dir=tmp_path))  # no image models: none needed
    with db.transaction() as s:
        gate.vault.seal(s, subject_kind="check", subject="chk_1", content=CONTENT,
                        metadata={"prompt": "the refused prompt"}, clause="KM-1",
                        account_id="acct-7")
        gate.vault.seal(s, subject_kind="check", subject="chk_2", content=b"someone else",
                        metadata={}, clause="KM-1", account_id="acct-8")
    with TestClient(create_app(gate=gate, people=people), follow_redirects=False) as client:
        yield gate, client
    gate.close()


def _as(client: TestClient, name: str) -> str:
    """Sign in as ``name``; the CSRF token of the session."""
    client.cookies.clear()
    assert client.post("/console/login", data={"username": name,
                                               "password": PASSWORD}).status_code == 303
    page = client.get("/console/account")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def _form(token: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": token, "kind": "disclosure", "agency": "FBI",
            "reference": "CASE-55", "legal_basis": "search warrant 26-M-0042",
            "account": "acct-7", "deadline": "2099-01-31", **fields}


def _counts(gate: Gate) -> tuple[int, int, int]:
    with gate.db.transaction() as s:
        return (s.scalar(select(func.count()).select_from(LawEnforcementRequest)) or 0,
                s.scalar(select(func.count()).select_from(EvidenceHold)) or 0,
                s.scalar(select(func.count()).select_from(AuditRecord)) or 0)


@pytest.mark.parametrize("name", ["mia", "cora", "lee"])
def test_only_child_safety_and_admins_reach_the_pages(world, name):
    gate, client = world
    token = _as(client, name)
    assert client.get("/console/law-enforcement").status_code == 403
    assert client.post("/console/law-enforcement", data=_form(token)).status_code == 403
    assert client.post("/console/law-enforcement/1/disclose",
                       data={"csrf_token": token, "passphrase": PASSPHRASE}
                       ).status_code == 403
    assert "/console/law-enforcement" not in client.get("/console").text  # not in the nav
    assert _counts(gate)[:2] == (0, 0)


@pytest.mark.parametrize("name", ["cara", "ada"])
def test_recording_places_the_hold_and_disclosing_downloads_the_package(world, name, caplog):
    caplog.set_level(logging.DEBUG)
    gate, client = world
    token = _as(client, name)
    listing = client.get("/console/law-enforcement")
    assert listing.status_code == 200 and "No requests." in listing.text

    recorded = client.post("/console/law-enforcement", data=_form(token))
    assert recorded.status_code == 303
    location = recorded.headers["location"]
    request_id = int(location.rsplit("/", 1)[1])
    with gate.db.transaction() as s:
        row = s.get(LawEnforcementRequest, request_id)
        assert row is not None and row.status == "open" and row.agency == "FBI"
        assert row.deadline == datetime(2099, 1, 31, 23, 59, 59, tzinfo=UTC)
        assert row.recorded_by.endswith(f":{name}")
        hold = s.get(EvidenceHold, row.hold_id)
        assert hold is not None and hold.account_id == "acct-7" and hold.lifted_at is None
        assert "CASE-55" in hold.reason
    assert verify(gate.db).ok
    assert all(i.held for i in gate.vault.items(account_id="acct-7"))
    listing = client.get("/console/law-enforcement")
    assert "CASE-55" in listing.text and re.search(r"due in \d+ days", listing.text)

    page = client.get(location)
    assert page.status_code == 200 and 'id="disclose"' in page.text
    answer = client.post(f"{location}/disclose", data={"csrf_token": token,
                                                        "passphrase": PASSPHRASE})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == \
        f'attachment; filename="disclosure-{request_id}.pkg"'
    assert CONTENT not in answer.content
    archive = zipfile.ZipFile(io.BytesIO(open_package(answer.content, PASSPHRASE)))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["request"]["reference"] == "CASE-55"
    assert [i["of"] for i in manifest["items"]] == ["check:chk_1"]  # acct-7's only
    assert archive.read(manifest["items"][0]["content"]) == CONTENT
    with gate.db.transaction() as s:
        row = s.get(LawEnforcementRequest, request_id)
        assert row is not None and row.status == "disclosed"
        assert row.package_sha256 == answer.headers["x-package-sha256"]
    assert verify(gate.db).ok
    assert PASSPHRASE not in caplog.text


def test_bad_input_is_refused_clearly_and_changes_nothing(world, caplog):
    caplog.set_level(logging.DEBUG)
    gate, client = world
    token = _as(client, "cara")
    before = _counts(gate)
    for fields, message in (({"agency": "  "}, "Give the request&#39;s agency."),
                            ({"kind": "subpoena"}, "a preservation or a disclosure"),
                            ({"deadline": "next week"}, "give the deadline as a date")):
        answer = client.post("/console/law-enforcement", data=_form(token, **fields))
        assert answer.status_code == 422
        assert message.lower() in answer.text.lower()
        assert 'value="CASE-55"' in answer.text  # what was typed is kept
        assert _counts(gate) == before
    assert client.post("/console/law-enforcement", data={**_form(token), "csrf_token": "x"}
                       ).status_code == 403
    assert _counts(gate) == before

    recorded = client.post("/console/law-enforcement", data=_form(token))
    location = recorded.headers["location"]
    before = _counts(gate)
    short = client.post(f"{location}/disclose", data={"csrf_token": token,
                                                       "passphrase": "too short"})
    assert short.status_code == 422
    assert "at least 16 characters" in short.text and 'href="#passphrase"' in short.text
    assert "too short" not in short.text
    assert _counts(gate) == before
    with gate.db.transaction() as s:
        assert s.scalars(select(LawEnforcementRequest.status)).all() == ["open"]
    assert client.post(f"{location}/disclose", data={"passphrase": PASSPHRASE}
                       ).status_code == 403  # no CSRF token
    assert _counts(gate) == before

    preservation = client.post("/console/law-enforcement",
                               data=_form(token, kind="preservation", reference="P-1"))
    page = client.get(preservation.headers["location"])
    assert 'id="disclose"' not in page.text
    refused = client.post(f"{preservation.headers['location']}/disclose",
                          data={"csrf_token": token, "passphrase": PASSPHRASE})
    assert refused.status_code == 422 and "preservation, not disclosure" in refused.text
    assert client.get("/console/law-enforcement/999").status_code == 404
    assert PASSPHRASE not in caplog.text and "too short" not in caplog.text


def test_the_countdown_reads_in_whole_days():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert countdown(None, now) == "no deadline"
    assert countdown(datetime(2026, 3, 1, 23, 59, tzinfo=UTC), now) == "due today"
    assert countdown(datetime(2026, 3, 2, 23, 59, tzinfo=UTC), now) == "due in 1 day"
    assert countdown(datetime(2026, 3, 5, 23, 59, tzinfo=UTC), now) == "due in 4 days"
    assert countdown(datetime(2026, 3, 1, 11, tzinfo=UTC), now) == "overdue"
    assert countdown(datetime(2026, 2, 27, 11, tzinfo=UTC), now) == "overdue by 2 days"
