"""The console's bank and policy pages: banks and their entries (hashes only; entries of
child-abuse banks only for child-safety reviewers and admins), disabling an entry with a
rationale (leads and admins, recorded with the person's name), the policy in force."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from counting_passwords import PASSWORD, SECRET_KEY, CountingPasswords
from fastapi.testclient import TestClient

from consentry.api.app import create_app
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import EntryHashes
from consentry.config import Settings
from consentry.gate import Gate
from consentry.people import People
from consentry.people.directory import Directory
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
def clock(clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


@pytest.fixture
def console(db, clock, tmp_path) -> Iterator:
    """Sign in as a person with some roles; each person has their own browser."""
    people = People(Directory(db, secrets=SecretBox(lambda: SECRET_KEY),
                              passwords=CountingPasswords(), clock=clock),
                    Sessions(db, clock=clock))
    gate = Gate(db, settings=Settings(data_dir=tmp_path))
    registry = gate.banks.registry
    registry.create("victims", "block", "ncii")
    registry.create("ncmec", "block", "csam")
    registry.add_entry("victims", EntryHashes(pdq=PDQ))
    registry.add_entry("ncmec", EntryHashes(md5="d41d8cd98f00b204e9800998ecf8427e"))
    opened = []

    def as_person(name: str, *roles: str) -> TestClient:
        people.directory.create(name, roles=list(roles), password=PASSWORD)
        client = TestClient(create_app(gate=gate, people=people), follow_redirects=False)
        opened.append(client.__enter__())
        signed = client.post("/console/login", data={"username": name, "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        return client

    yield as_person, gate
    for client in opened:
        client.__exit__(None, None, None)
    gate.close()


def _csrf(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_banks_and_entries_are_browsed_as_hashes(console):
    as_person, _ = console
    mod = as_person("moe", "moderator")
    banks = mod.get("/console/banks")
    assert banks.status_code == 200 and "victims" in banks.text and "ncmec" in banks.text
    victims = mod.get("/console/banks/victims")
    assert PDQ in victims.text and "<img" not in victims.text
    assert mod.get("/console/banks/ncmec").status_code == 404  # child-abuse bank entries
    cs = as_person("cass", "child_safety")
    assert cs.get("/console/banks/ncmec").status_code == 200


def test_a_lead_disables_an_entry_with_a_rationale_and_it_stops_matching(console):
    as_person, gate = console
    entry = gate.banks.registry.entries("victims")[0].id
    assert gate.banks.matcher.match(None, from_hex([PDQ]))
    mod = as_person("moe", "moderator")
    page = mod.get(f"/console/banks/victims/entries/{entry}")
    assert page.status_code == 200 and "Disable this entry" not in page.text
    lead = as_person("lea", "lead")
    page = lead.get(f"/console/banks/victims/entries/{entry}")
    token = _csrf(page)
    short = lead.post(f"/console/banks/victims/entries/{entry}",
                      data={"csrf_token": token, "enable": "0", "rationale": "wrong"})
    assert short.status_code == 422 and 'href="#rationale"' in short.text
    assert gate.banks.registry.entry(entry).status == "active"
    forged = lead.post(f"/console/banks/victims/entries/{entry}",
                       data={"csrf_token": "x" * 20, "enable": "0",
                             "rationale": "a benign image that collided"})
    assert forged.status_code == 403
    done = lead.post(f"/console/banks/victims/entries/{entry}",
                     data={"csrf_token": token, "enable": "0",
                           "rationale": "a benign image that collided"})
    assert done.status_code == 303
    assert gate.banks.registry.entry(entry).status == "disabled"
    assert gate.banks.matcher.match(None, from_hex([PDQ])) == []
    [event] = [h for h in gate.banks.registry.history(entry)
               if h["action"] == "entry_disabled"]
    assert event["actor"].endswith(":lea") and event["details"]["reason"].startswith("a benign")
    shown = lead.get(f"/console/banks/victims/entries/{entry}")
    assert "a benign image that collided" in shown.text and "Re-enable" in shown.text
    assert mod.post(f"/console/banks/victims/entries/{entry}",
                    data={"csrf_token": _csrf(mod.get("/console/banks")), "enable": "1",
                          "rationale": "I think it was right"}).status_code == 403


def test_the_policy_in_force_is_shown_clause_by_clause(console):
    as_person, gate = console
    page = as_person("cora", "compliance").get("/console/policy")
    assert page.status_code == 200
    assert f'id="policy-version">{gate.policy.version}<' in page.text
    for clause in gate.policy.clauses:
        assert f'id="clause-{clause}"' in page.text
    assert "confirmation within 24 hours" in page.text
