"""``consentry audit``: verify the chain (exit 1 and the first bad link when tampered
with), sign a checkpoint, print the public key, export a range and verify the export with
the public key alone, from a directory that has no database (real subprocesses over the
embedded database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from consentry.config import Settings
from consentry.store import Database


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
            "CONSENTRY_DATABASE_URL": "", "CONSENTRY_SECRET_KEY": "k" * 40}


def consentry(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consentry", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=180)


def test_verify_checkpoint_export_and_verify_the_export_elsewhere(env, tmp_path):
    for account in ("a1", "a2", "a3"):
        done = consentry(env, "check", "generation", "--prompt", "a cat on a sofa",
                         "--account", account, "--json")
        assert done.returncode == 0, done.stderr
    made = consentry(env, "user", "create", "root", "--role", "admin", "--password-stdin",
                     stdin="plum orchard lantern\n")
    assert made.returncode == 0, made.stderr

    verified = consentry(env, "audit", "verify", "--sources")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["checked"] == 4 and report["problem"] is None

    signed = json.loads(consentry(env, "audit", "checkpoint").stdout)
    assert signed["signed"] and signed["seq"] == 4
    public = json.loads(consentry(env, "audit", "public-key").stdout)["public_key"]

    out = tmp_path / "export.jsonl"
    exported = consentry(env, "audit", "export", "--from", "2", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    elsewhere = {k: v for k, v in env.items() if not k.startswith("CONSENTRY_")}
    elsewhere["CONSENTRY_DATA_DIR"] = str(tmp_path / "nothing-here")
    checked = consentry(elsewhere, "audit", "verify-export", str(out), "--public-key", public)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["checked"] == 3
    assert not (tmp_path / "nothing-here" / "consentry.db").exists()

    bad = consentry(env, "audit", "export", "--from", "9", "--out", str(out))
    assert bad.returncode == 2 and "choose 1 <= from <= to <= 4" in bad.stderr

    db = Database(Settings(data_dir=Path(env["CONSENTRY_DATA_DIR"])).resolved_database_url)
    with db.transaction() as s:
        s.execute(text("DELETE FROM audit_records WHERE seq = 2"))
    db.dispose()
    tampered = consentry(env, "audit", "verify")
    assert tampered.returncode == 1
    found = json.loads(tampered.stdout)
    assert found["bad_seq"] == 2 and "missing" in found["problem"]
