"""The incident pack over a generated history: its manifest matches its files, its audit
proof verifies with the public key, its volumes equal the history's, it holds no personal
data, and a pack that fails half-way leaves the previous one whole."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from report_history import END, START, History, build_history

from consentry.audit.checkpoints import Signer, parse_public_key, verify_signature
from consentry.audit.configuration import record_configuration
from consentry.config import Settings
from consentry.errors import InvalidRequest
from consentry.reporting import incident as incident_module
from consentry.reporting.incident import IncidentScope, build_incident, write_pack
from consentry.reporting.transparency import Period


@pytest.fixture
def signer(db):
    return Signer(db, bytes(range(32)), every_records=50)


@pytest.fixture
def history(db, signer, tmp_path) -> History:
    record_configuration(db, Settings(data_dir=tmp_path), "1.0")
    time.sleep(0.01)
    built = build_history(db)
    built.mid = datetime.now(UTC)  # after the first configuration, before the second
    signer.checkpoint(force=True)
    record_configuration(db, Settings(data_dir=tmp_path, reveal_seconds=20), "1.1")
    return built


def _read(pack_path):
    with zipfile.ZipFile(pack_path) as pack:
        return {name: pack.read(name) for name in pack.namelist()}


def test_the_pack_proves_itself_and_counts_what_happened(db, signer, history, tmp_path):
    scope = IncidentScope(Period(START, END))
    out = tmp_path / "pack.zip"
    built = build_incident(signer, scope)
    digest = write_pack(built, out)
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    files = _read(out)

    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["format"] == "consentry-incident-pack-v1"
    assert {e["name"] for e in manifest["files"]} == set(files)
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
    assert {"summary.html", "timeline.csv", "timeline.svg", "measures.json", "sla.json",
            "samples.json", "audit/verification.json", "audit/checkpoints.jsonl"} <= set(files)

    proof = json.loads(files["audit/verification.json"])
    assert proof["verification"]["ok"] is True and proof["links"] > 300
    assert proof["verification"]["checkpoints_verified"] >= 1
    lines = [json.loads(x) for x in files["audit/checkpoints.jsonl"].decode().splitlines()]
    key = parse_public_key(lines[0]["public_key"])
    checkpoints = [x for x in lines if x["type"] == "checkpoint"]
    assert checkpoints and all(verify_signature(key, c["seq"], c["hash"], c["signature"])
                               for c in checkpoints)
    assert checkpoints[-1]["seq"] >= proof["last_seq"] and proof["first_seq"] <= \
        checkpoints[0]["seq"]

    inside = [c for c in history.checks if History.inside(c["at"])]
    rows = list(csv.DictReader(io.StringIO(files["timeline.csv"].decode())))
    assert len(rows) == 48
    assert sum(int(r["attempts"]) for r in rows) == len(inside)
    assert sum(int(r["refusals"]) for r in rows) == sum(c["decision"] == "block"
                                                        for c in inside)
    assert sum(int(r["matches"]) for r in rows) == sum(c["matched"] is not None for c in inside)
    assert sum(int(r["takedowns"]) for r in rows) == sum(
        History.inside(c["received"]) and c["merged"] is None for c in history.cases)
    assert sum(int(r["suspensions"]) for r in rows) == sum(
        History.inside(s["at"]) for s in history.suspensions)
    first_hour = [c for c in inside if c["at"] < START + timedelta(hours=1)]
    assert int(rows[0]["attempts"]) == len(first_hour)

    assert [m["policy_version"] for m in json.loads(files["measures.json"])] == ["1.0", "1.1"]
    later = build_incident(signer, IncidentScope(Period(history.mid, END)))
    write_pack(later, out)
    measures = json.loads(_read(out)["measures.json"])
    assert [m["policy_version"] for m in measures] == ["1.0", "1.1"]
    assert measures[0]["in_force_at_start"] and not measures[1]["in_force_at_start"]
    assert "reveal_seconds" in measures[1]["changed"]

    samples = json.loads(files["samples.json"])
    assert 0 < len(samples) <= 25 and all(s["decision"] != "allow" for s in samples)
    assert any(r.get("language") for s in samples for r in s["reasons"])

    for name, data in files.items():
        text = data.decode()
        leaked = [p for p in history.personal if p in text]
        assert not leaked, f"{name} holds {leaked}"
        assert "bikini" not in text  # no prompt or matched words
    assert b"<script" not in files["summary.html"] and b"<svg" in files["summary.html"]


def test_clause_and_surface_narrow_the_decisions(db, signer, history, tmp_path):
    built = build_incident(signer, IncidentScope(Period(START, END), clause="II-1",
                                                 surface="generation"))
    expected = [c for c in history.checks if History.inside(c["at"])
                and c["clause"] == "II-1" and c["kind"] == "generation"]
    assert built.totals["attempts"] == len(expected)
    assert all(s.clause == "II-1" and s.surface == "generation" for s in built.samples)
    with pytest.raises(InvalidRequest):
        IncidentScope(Period(START, END), surface="email")


def test_a_pack_that_fails_half_way_leaves_the_good_one(db, signer, history, tmp_path,
                                                        monkeypatch):
    out = tmp_path / "pack.zip"
    built = build_incident(signer, IncidentScope(Period(START, END)))
    write_pack(built, out)
    good = out.read_bytes()

    def broken(files):
        raise OSError("disk full")

    monkeypatch.setattr(incident_module, "manifest", broken)
    with pytest.raises(OSError):
        write_pack(built, out)
    real_files = incident_module.pack_files

    def half(incident):
        files = real_files(incident)
        files["boom"] = None  # writing it fails after other files went into the zip
        return files

    monkeypatch.setattr(incident_module, "manifest", lambda files: b"{}")
    monkeypatch.setattr(incident_module, "pack_files", half)
    with pytest.raises(TypeError):
        write_pack(built, out)
    assert out.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
