"""``consentry report``: the report and the pack written from the command line; the
register changed only by a named administrator, and its open requests listed with their
countdown."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from cli_process import cli_env, consentry


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


def test_report_pack_and_register_from_the_command_line(env, tmp_path):
    for who, role in (("root", "admin"), ("cora", "compliance")):
        made = consentry(env, "user", "create", who, "--role", role, "--password-stdin",
                         stdin="plum orchard lantern\n")
        assert made.returncode == 0, made.stderr

    done = consentry(env, "report", "transparency", "--from", "2026-11-01", "--to",
                     "2030-01-01", "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "transparency.csv", "transparency.html", "transparency.json"]
    assert consentry(env, "report", "transparency", "--from", "2026-11-04", "--to",
                     "2026-11-01", "--out", str(tmp_path / "x")).returncode == 2

    pack = tmp_path / "pack.zip"
    done = consentry(env, "report", "incident", "--from", "2026-11-01", "--to", "2030-01-01",
                     "--surface", "generation", "--out", str(pack))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["audit_ok"] is True and "manifest.json" in zipfile.ZipFile(pack).namelist()

    request = ("report", "request-add", "--regulator", "Ofcom", "--reference", "OFC-1",
               "--legal-basis", "OSA s.100", "--questions", "What happened?",
               "--deadline", "2099-01-01T12:00:00Z")
    refused = consentry(env, *request, "--by", "cora")
    assert refused.returncode == 2 and "administrator" in refused.stderr
    added = consentry(env, *request, "--by", "root")
    assert added.returncode == 0, added.stderr
    request_id = json.loads(added.stdout)["id"]
    attached = consentry(env, "report", "request-attach", str(request_id), str(pack),
                         "--kind", "incident_pack", "--by", "root")
    assert attached.returncode == 0, attached.stderr
    [listed] = [json.loads(x) for x in consentry(env, "report", "requests").stdout.splitlines()]
    assert listed["countdown"].startswith("due in") and listed["attachments"][0]["sha256"] == \
        answer["sha256"]
    closed = consentry(env, "report", "request-status", str(request_id), "closed",
                       "--by", "root")
    assert closed.returncode == 0, closed.stderr
    assert consentry(env, "report", "requests").stdout == ""


def test_checks_are_exported_to_the_analytics_engine_again_from_the_command_line(env, tmp_path):
    for prompt in ("a red barn", "a teapot on a table"):
        assert consentry(env, "check", "generation", "--prompt", prompt, "--json"
                         ).returncode == 0
    refused = consentry(env, "report", "export-analytics")
    assert refused.returncode == 2 and "CONSENTRY_CLICKHOUSE_URL" in refused.stderr
    engine = {**env, "CONSENTRY_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}"}
    half = consentry(engine, "report", "export-analytics", "--from", "2026-11-01")
    assert half.returncode == 2 and "both --from and --to" in half.stderr
    for _ in range(2):  # again: the engine keeps one row per check
        done = consentry(engine, "report", "export-analytics")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["sent"] == 2
    window = consentry(engine, "report", "export-analytics", "--from", "2000-01-01",
                       "--to", "2000-01-02")
    assert json.loads(window.stdout)["sent"] == 0
    # A period reaching past the export: the engine counts what the export covers (up
    # to its newest check less the allowance for late commits), the database the rest.
    report = consentry(engine, "report", "transparency", "--from", "2026-11-01", "--to",
                       "2030-01-01", "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    answer = json.loads(report.stdout)
    assert answer["checks_counted_on"] == "analytics+database"
    assert answer["checks_on_database_from"]
    written = json.loads((tmp_path / "report" / "transparency.json").read_text())
    assert sum(s["attempts"] for s in written["surfaces"]) == 2  # both checks, once each

    from consentry.reporting.analytics import CHECKS_TABLE
    from consentry.store.clickhouse import connect_clickhouse

    handle = connect_clickhouse(f"chdb://{tmp_path / 'ch'}")
    try:
        [(count,)] = handle.rows(f"SELECT count() FROM {handle.database}.{CHECKS_TABLE} FINAL")
    finally:
        handle.close()
    assert count == 2
