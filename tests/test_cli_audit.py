"""``consentry audit``: verify the chain (exit 1 and the first bad link when tampered
with), sign a checkpoint, print the public key, export a range and verify the export with
the public key alone, from a directory that has no database (real subprocesses over the
embedded database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import cli_env, consentry
from sqlalchemy import text

from consentry.config import Settings
from consentry.store import Database


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


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


def test_evidence_from_the_command_line_is_sealed_held_opened_with_a_reason_and_rotated(
        env, tmp_path):
    import base64

    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 64), (200, 120, 90)).save(photo)
    done = consentry(env, "check", "generation", "--prompt", "sexy 12 year old girl",
                     "--account", "p1", "--image", str(photo), "--json")
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["policy"]["clause"] == "CS-1"
    assert verdict["enforcement"]["evidence_preserved"] is True
    listed = [json.loads(x) for x in consentry(env, "evidence", "list", "--account",
                                                 "p1").stdout.splitlines()]
    # The preserved evidence, and the copy its reviewers see (both sealed).
    assert sorted(i["subject_kind"] for i in listed) == ["check", "check_media"]
    [item] = [i for i in listed if i["subject_kind"] == "check"]
    assert item["subject"] == verdict["id"] and item["has_content"]

    refused = consentry(env, "evidence", "open", item["id"], "--why", "curious",
                        "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "at least three words" in refused.stderr
    out = tmp_path / "evidence.jpg"
    opened = consentry(env, "evidence", "open", item["id"], "--why",
                       "preparing the CyberTipline report", "--out", str(out))
    assert opened.returncode == 0, opened.stderr
    assert out.read_bytes() == photo.read_bytes() and (out.stat().st_mode & 0o777) == 0o600

    held = consentry(env, "evidence", "hold", "--account", "p1", "--reason",
                     "preservation request from the police, ref 117")
    assert held.returncode == 0 and json.loads(held.stdout)["hold"] == 1

    new_key = base64.b64encode(b"n" * 32).decode()
    wrong = {**env, "CONSENTRY_EVIDENCE_KEYS": f"new:{new_key}"}
    refused_start = consentry(wrong, "evidence", "list")
    assert refused_start.returncode == 2 and "does not hold" in refused_start.stderr
    # Rotating to a new key: the old one (derived from the secret) stays listed until then.
    from consentry.config import Settings as _Settings
    from consentry.evidence import keyring_for
    old = keyring_for(_Settings(data_dir=Path(env["CONSENTRY_DATA_DIR"]),
                                secret_key=env["CONSENTRY_SECRET_KEY"]))
    both = {**env, "CONSENTRY_EVIDENCE_KEYS":
            f"new:{new_key},{old.active}:{base64.b64encode(old.key(old.active)).decode()}"}
    rotated = consentry(both, "evidence", "rotate")
    assert rotated.returncode == 0 and json.loads(rotated.stdout)["rewrapped"] == 2
    only_new = {**env, "CONSENTRY_EVIDENCE_KEYS": f"new:{new_key}"}
    again = consentry(only_new, "evidence", "open", item["id"], "--why",
                      "checking after the rotation", "--out", str(tmp_path / "again.jpg"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.jpg").read_bytes() == photo.read_bytes()
    assert consentry(env, "audit", "verify").returncode == 0


def test_law_enforcement_requests_from_the_command_line(env, tmp_path):
    from PIL import Image

    from consentry.reporting.law_enforcement import open_package

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 64), (90, 120, 200)).save(photo)
    done = consentry(env, "check", "generation", "--prompt", "sexy 12 year old girl",
                     "--account", "p7", "--image", str(photo), "--json")
    assert done.returncode == 0, done.stderr
    recorded = consentry(env, "law-enforcement", "record", "--kind", "disclosure",
                         "--agency", "NCA", "--reference", "NCA-9", "--legal-basis",
                         "production order 2026/33", "--account", "p7")
    assert recorded.returncode == 0, recorded.stderr
    request = json.loads(recorded.stdout)
    assert request["status"] == "open" and request["hold"]
    out = tmp_path / "package.bin"
    weak = consentry(env, "law-enforcement", "disclose", str(request["request"]), "--out",
                     str(out), stdin="short\n")
    assert weak.returncode == 2 and "at least 16 characters" in weak.stderr
    assert not out.exists()
    made = consentry(env, "law-enforcement", "disclose", str(request["request"]), "--out",
                     str(out), stdin="a long shared passphrase\n")
    assert made.returncode == 0, made.stderr
    assert open_package(out.read_bytes(), "a long shared passphrase").startswith(b"PK")
    [listed] = [json.loads(x) for x in
                consentry(env, "law-enforcement", "list").stdout.splitlines()]
    assert listed["status"] == "disclosed"
    assert listed["package_sha256"] == json.loads(made.stdout)["sha256"]
