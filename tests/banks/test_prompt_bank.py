"""The prompt bank: a phrasing confirmed once is refused everywhere, in other words and
other languages, from the next request on; entries can be disabled (issue 10, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.errors import InvalidRequest, NotFound
from consentry.gate import Gate

pytestmark = pytest.mark.slow

PHRASING = "get her ready for the hotel room scene"
PARAPHRASES = ["make her ready for the scene in the hotel room",
               "prepárala para la escena de la habitación del hotel",
               "prépare-la pour la scène de la chambre d hôtel"]


def test_a_confirmed_phrasing_refuses_its_paraphrases_until_disabled(gate: Gate, photos):
    photo = photos["astronaut"]
    for p in PARAPHRASES:
        assert gate.check_generation(p, [photo]).decision == "allow", p
    entry = gate.prompt_bank.add(PHRASING, "II-1", author="reviewer:ana",
                                 reason="staging for a sexual scene (case 1)")
    assert entry.enabled and entry.author == "reviewer:ana"
    for p in PARAPHRASES:
        v = gate.check_generation(p, [photo], "pb-1")
        assert (v.decision, v.policy.clause) == ("block", "II-1"), p
        [hit] = [r for r in v.reasons if r["code"] == "prompt_bank_match"]
        assert hit["entry"] == entry.id and hit["exemplar"] == PHRASING
        assert 0.8 <= hit["similarity"] <= 1
    # Unrelated requests about the same photo are untouched.
    assert gate.check_generation("get her ready for the school play", [photo]).decision \
        == "allow"
    disabled = gate.prompt_bank.set_enabled(entry.id, False, actor="lead:bo",
                                            reason="too broad")
    assert not disabled.enabled and disabled.changed_by == "lead:bo"
    gate.prompt_bank._checked = 0.0  # another second has passed: the replica reloads
    assert gate.check_generation(PARAPHRASES[0], [photo]).decision == "allow"


def test_bad_entries_are_refused(gate: Gate):
    with pytest.raises(InvalidRequest):
        gate.prompt_bank.add(PHRASING, "XX-9", author="a", reason="r")
    with pytest.raises(InvalidRequest):
        gate.prompt_bank.add(" ", "II-1", author="a", reason="r")
    with pytest.raises(InvalidRequest):
        gate.prompt_bank.add(PHRASING, "II-1", author="a", reason="")
    with pytest.raises(NotFound):
        gate.prompt_bank.set_enabled(999, False, actor="a")


def test_the_http_api_adds_lists_and_disables_entries(gate: Gate):
    _, admin = create_api_key(gate.db, "trust-and-safety", [Scope.BANKS])
    _, checker = create_api_key(gate.db, "pipeline", [Scope.CHECK])
    with TestClient(create_app(gate=gate)) as client:
        denied = client.post("/v1/prompt-bank", headers={"X-API-Key": checker},
                             json={"text": PHRASING, "clause": "II-1", "reason": "r"})
        assert denied.status_code == 403
        r = client.post("/v1/prompt-bank", headers={"X-API-Key": admin},
                        json={"text": PHRASING, "clause": "II-1", "reason": "case 7"})
        assert r.status_code == 201, r.text
        entry = r.json()
        assert entry["author"] == "trust-and-safety" and entry["status"] == "active"
        bad = client.post("/v1/prompt-bank", headers={"X-API-Key": admin},
                          json={"text": PHRASING, "clause": "nope", "reason": "r"})
        assert bad.status_code == 422
        page = client.get("/v1/prompt-bank", headers={"X-API-Key": admin}).json()
        assert [e["id"] for e in page["entries"]] == [entry["id"]]
        off = client.patch(f"/v1/prompt-bank/{entry['id']}", headers={"X-API-Key": admin},
                           json={"enabled": False, "reason": "too broad"})
        assert off.json()["status"] == "disabled"
        missing = client.patch("/v1/prompt-bank/999", headers={"X-API-Key": admin},
                               json={"enabled": False})
        assert missing.status_code == 404


def test_the_cli_adds_lists_and_disables_entries(tmp_path: Path):
    env = {**os.environ, "CONSENTRY_DATA_DIR": str(tmp_path), "CONSENTRY_DATABASE_URL": ""}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "consentry", *args], env=env,
                              capture_output=True, text=True, timeout=300)

    added = run("prompt-bank", "add", "--text", PHRASING, "--clause", "II-1",
                "--reason", "case 8")
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)
    assert entry["clause"] == "II-1" and entry["author"].startswith("cli")
    assert run("prompt-bank", "add", "--text", "x", "--clause", "ZZ", "--reason",
               "r").returncode == 2
    assert run("prompt-bank", "disable", str(entry["id"]), "--reason", "dup").returncode == 0
    listed = [json.loads(line) for line in run("prompt-bank", "list").stdout.splitlines()]
    assert [(e["id"], e["status"]) for e in listed] == [(entry["id"], "disabled")]
    assert run("prompt-bank", "enable", "999").returncode == 2
