"""``consentry takedown``: a case filed, listed by deadline, worked and reversed from the
command line (real subprocesses; callbacks reach a loopback platform)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from removal_platform import SECRET

from consentry.banks.content import ContentIndex
from consentry.banks.services import entry_hashes
from consentry.signals.hashing import fingerprint
from consentry.store import Database


@pytest.fixture
def env(tmp_path: Path, platform) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    return {**os.environ, "CONSENTRY_DATA_DIR": str(data), "CONSENTRY_DATABASE_URL": "",
            "CONSENTRY_REMOVAL_CALLBACK_URL": platform.url,
            "CONSENTRY_REMOVAL_CALLBACK_SECRET": SECRET}


@pytest.fixture
def posted(env, photos):
    db = Database(f"sqlite:///{Path(env['CONSENTRY_DATA_DIR']) / 'consentry.db'}")
    db.migrate()
    ContentIndex(db).register("post-7", "upload", entry_hashes(fingerprint(photos["hopper"])),
                              account_id="u-7", url="https://social.example/p/7")
    yield
    db.dispose()


def consentry(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consentry", "takedown", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_submit_list_status_and_reverse(env, posted, platform, tmp_path):
    incomplete = consentry(env, "submit", "--regime", "take_it_down",
                           "--content-id", "nothing-here", "--json")
    assert incomplete.returncode == 0, incomplete.stderr
    first = json.loads(incomplete.stdout)
    assert first["case"]["status"] == "incomplete" and len(first["pin"]) == 8

    filed = consentry(env, "submit", "--regime", "take_it_down",
                      "--url", "https://social.example/p/7", "--signature", "Sam Doe",
                      "--email", "sam@example.org", "--declare", "not_consensual",
                      "--statement", "shared without my consent")
    assert filed.returncode == 0, filed.stderr
    assert "removed" in filed.stdout and "PIN (shown once):" in filed.stdout
    number = filed.stdout.split()[0]
    assert platform.removed == {"post-7"}

    listed = consentry(env, "list", "--due", "open", "--json")
    assert [json.loads(line)["case"] for line in listed.stdout.splitlines()] == [
        first["case"]["case"]]
    assert consentry(env, "list", "--due", "overdue", "--json").stdout == ""

    status = json.loads(consentry(env, "status", number, "--json").stdout)
    assert status["status"] == "removed" and status["removed"] == ["post-7"]
    assert [e["kind"] for e in status["events"]][:2] == ["received", "notified"]

    reversed_ = consentry(env, "reverse", number, "--reason", "requester not shown")
    assert reversed_.returncode == 0 and "reversed" in reversed_.stdout
    assert platform.removed == set()
    outbox = list((Path(env["CONSENTRY_DATA_DIR"]) / "outbox").glob("*.eml"))
    assert len(outbox) >= 4  # received, removed, statement of reasons, reversal notices


def test_clear_exit_codes(env, posted):
    assert consentry(env, "status", "TD-0000000000").returncode == 3
    assert consentry(env, "reject", "TD-0000000000", "--reason", "x").returncode == 3
    bad = consentry(env, "submit", "--regime", "take_it_down", "--image", "/no/such.jpg")
    assert bad.returncode == 2 and "no/such.jpg" in bad.stderr
