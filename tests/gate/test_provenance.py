"""Provenance through the gate, on real models and real databases: an allowed output is
fetched watermarked and signed; an upload's manifest and watermark are read; an
AI-generated sexualised image of a real person is refused under II-2."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace

import c2pa
import numpy as np
import pytest
from cli_process import cli_env, consentry
from fastapi.testclient import TestClient
from PIL import Image
from provenance_keys import make_credentials

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.config import Settings
from consentry.errors import Conflict, InvalidRequest, NotFound
from consentry.gate import Gate
from consentry.gate.marking import ProvenanceNotConfigured
from consentry.policy import load_policy
from consentry.policy.document import Thresholds
from consentry.signals.manifest import reader_settings
from consentry.signals.watermark import detect_mark
from consentry.store import Database
from consentry.store.models import CheckRecord

OURS = make_credentials("Platform")
FORGER = make_credentials("Forger")


def settings_for(tmp_path, creds=OURS) -> Settings:
    return Settings(data_dir=tmp_path, provenance_key=creds.key_pem,
                    provenance_certs=creds.chain_pem, provenance_generator="ImageGen 3")


@pytest.fixture
def marking_gate(db, analyser, clock, tmp_path):
    g = Gate(db, settings=settings_for(tmp_path), analyser=analyser, clock=clock)
    yield g
    g.close()


@pytest.fixture
def intimate_gate(db, analyser, clock, tmp_path):
    """Every image counts as intimate (the nudity threshold set at its floor): no real
    nude photo of a real person is, or should be, in the test data; faces stay real."""
    policy = load_policy(None)
    policy = policy.model_copy(update={"thresholds": Thresholds(intimate_image=1e-9)})
    g = Gate(db, settings=settings_for(tmp_path), analyser=analyser, clock=clock,
             policy=policy)
    yield g
    g.close()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def screenshot(data: bytes) -> bytes:
    """Resized to 3/4, JPEG q75, no metadata: the manifest is gone, the mark stays."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    shot = io.BytesIO()
    img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(shot, "JPEG", quality=75)
    return shot.getvalue()


def test_an_allowed_output_is_fetched_watermarked_with_a_valid_manifest(marking_gate, photos):
    verdict = marking_gate.check_output(photos["coffee"])
    assert verdict.decision == "allow"
    marked = marking_gate.mark_output(verdict.id, photos["coffee"])
    assert marked.media_type == "image/jpeg"
    context = c2pa.Context(c2pa.Settings.from_dict(reader_settings(OURS.ca_pem)))
    with c2pa.Reader("image/jpeg", io.BytesIO(marked.content), None, context) as reader:
        assert reader.get_validation_state() == "Trusted"
        labels = {a["label"]: a["data"] for a in reader.get_active_manifest()["assertions"]}
    assert labels["org.consentry.verdict"] == {
        "verdict": verdict.id, "policy_version": verdict.policy.version,
        "watermark": "invisible-watermark rivaGan"}
    assert detect_mark(pixels(marked.content)).detected
    assert not detect_mark(pixels(photos["coffee"])).detected


def test_marking_is_refused_for_other_bytes_refusals_and_unknown_checks(marking_gate, photos,
                                                                        tmp_path, db):
    verdict = marking_gate.check_output(photos["coffee"])
    with pytest.raises(InvalidRequest, match="not the one output") as mismatch:
        marking_gate.mark_output(verdict.id, photos["china"])
    assert mismatch.value.code == "image_mismatch"
    with pytest.raises(NotFound):
        marking_gate.mark_output("chk_unknown", photos["coffee"])
    generation = marking_gate.check_generation("put her in a bikini", [photos["astronaut"]])
    assert generation.decision == "block"
    with pytest.raises(Conflict, match="only outputs"):
        marking_gate.mark_output(generation.id, photos["astronaut"])
    unconfigured = Gate(db, settings=Settings(data_dir=tmp_path),
                        analyser=marking_gate.image_analyser)
    try:
        with pytest.raises(ProvenanceNotConfigured, match="CONSENTRY_PROVENANCE_KEY"):
            unconfigured.mark_output(verdict.id, photos["coffee"])
    finally:
        unconfigured.close()


def test_a_blocked_output_is_not_marked(intimate_gate, photos):
    verdict = intimate_gate.check_output(photos["astronaut"])
    assert verdict.decision == "block"
    with pytest.raises(Conflict, match="not allowed") as refused:
        intimate_gate.mark_output(verdict.id, photos["astronaut"])
    assert refused.value.code == "output_not_allowed"


def test_an_ai_marked_sexualised_upload_of_a_real_person_is_ii2(intimate_gate, marking_gate,
                                                                 photos):
    output = marking_gate.check_output(photos["hopper"])
    assert output.decision == "allow"
    marked = marking_gate.mark_output(output.id, photos["hopper"]).content
    verdict = intimate_gate.check_upload(marked, "u1")
    assert (verdict.decision, verdict.policy.clause) == ("block", "II-2")
    codes = {r["code"] for r in verdict.reasons}
    assert {"ai_generated", "real_person_in_photo", "intimate_input_image"} <= codes
    kinds = {r["kind"] for r in verdict.reasons if r["code"] == "ai_generated"}
    assert kinds == {"c2pa", "watermark"}
    assert verdict.provenance is not None and verdict.provenance.ai_generated
    assert verdict.provenance.manifest.state == "valid"
    assert verdict.provenance.manifest.generator == "ImageGen 3"
    # The same image unmarked is judged by the ordinary rules.
    plain = intimate_gate.check_upload(photos["hopper"], "u2")
    assert (plain.decision, plain.policy.clause) == ("block", "SX-1")
    assert "ai_generated" not in {r["code"] for r in plain.reasons}
    assert plain.provenance is not None and plain.provenance.manifest.state == "absent"


def test_a_screenshot_of_a_marked_output_still_counts_as_ai_generated(intimate_gate,
                                                                      marking_gate, photos):
    output = marking_gate.check_output(photos["hopper"])
    shot = screenshot(marking_gate.mark_output(output.id, photos["hopper"]).content)
    verdict = intimate_gate.check_upload(shot)
    assert (verdict.decision, verdict.policy.clause) == ("block", "II-2")
    assert verdict.provenance.manifest.state == "absent"
    assert verdict.provenance.watermark.detected


def test_the_watermark_is_read_only_where_it_can_change_the_decision(marking_gate, db,
                                                                      analyser, clock,
                                                                      tmp_path, photos):
    output = marking_gate.check_output(photos["coffee"])  # no face: never II-2
    shot = screenshot(marking_gate.mark_output(output.id, photos["coffee"]).content)
    verdict = marking_gate.check_upload(shot, "u1")
    assert verdict.decision == "allow"
    assert verdict.provenance.manifest.state == "absent"
    assert verdict.provenance.watermark is None  # not read: 0.4 s that decides nothing
    assert not verdict.provenance.ai_generated
    # A platform that labels every AI-generated upload reads it always.
    labelling = Gate(db, settings=replace(settings_for(tmp_path / "l"), read_watermark="always"),
                     analyser=analyser, clock=clock)
    try:
        verdict = labelling.check_upload(shot, "u2")
    finally:
        labelling.close()
    assert verdict.decision == "allow"
    assert verdict.provenance.watermark.detected and verdict.provenance.ai_generated
    unmarked = marking_gate.check_upload(photos["china"], "u3")
    assert unmarked.provenance.watermark is None


def test_a_forged_manifest_is_reported_and_clears_nothing(db, analyser, clock, tmp_path,
                                                         marking_gate, photos):
    # Another service, with its own database and keys, signing with a key nobody trusts.
    elsewhere = Database(f"sqlite:///{tmp_path / 'forger.db'}")
    elsewhere.migrate()
    forger = Gate(elsewhere, settings=settings_for(tmp_path / "f", FORGER), analyser=analyser,
                  clock=clock)
    try:
        output = forger.check_output(photos["china"])
        forged = forger.mark_output(output.id, photos["china"]).content
    finally:
        forger.close()
        elsewhere.dispose()
    verdict = marking_gate.check_upload(forged)
    assert verdict.decision == "allow"  # a landscape: the forgery changes nothing
    notes = [r for r in verdict.reasons if r["code"] == "provenance_unverified"]
    assert [n["kind"] for n in notes] == ["untrusted"]
    assert verdict.provenance.manifest.state == "untrusted"
    # Replayed from the store as the reviewers see it.
    with marking_gate.db.transaction() as session:
        record = session.get(CheckRecord, verdict.id)
    assert record.verdict["provenance"]["manifest"]["state"] == "untrusted"


def test_the_http_endpoint_returns_the_marked_image(marking_gate, photos):
    with TestClient(create_app(gate=marking_gate)) as client:
        key = create_api_key(marking_gate.db, "platform", [Scope.CHECK])[1]
        headers = {"Authorization": f"Bearer {key}"}
        verdict = marking_gate.check_output(photos["coffee"])
        body = {"image": base64.b64encode(photos["coffee"]).decode()}
        path = f"/v1/outputs/{verdict.id}/provenance"
        assert client.post(path, json=body).status_code == 401
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert detect_mark(pixels(r.content)).detected
        r = client.post(path, files={"image": ("o.jpg", photos["coffee"], "image/jpeg")},
                        headers=headers)
        assert r.status_code == 200
        other = {"image": base64.b64encode(photos["china"]).decode()}
        r = client.post(path, json=other, headers=headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "image_mismatch"
        r = client.post(path, json={"image": "not base64!"}, headers=headers)
        assert r.status_code == 422
        r = client.post(path, json={"image": body["image"], "extra": 1}, headers=headers)
        assert r.status_code == 422
        r = client.post("/v1/outputs/chk_nope/provenance", json=body, headers=headers)
        assert r.status_code == 404


def test_cli_reads_what_an_image_carries(marking_gate, photos, tmp_path):
    verdict = marking_gate.check_output(photos["coffee"])
    marked = tmp_path / "marked.jpg"
    marked.write_bytes(marking_gate.mark_output(verdict.id, photos["coffee"]).content)
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(photos["coffee"])
    env = {**cli_env(tmp_path), "CONSENTRY_PROVENANCE_CERTS": OURS.chain_pem}
    done = consentry(env, "provenance", "read", str(marked))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["manifest"]["state"] == "valid" and out["manifest"]["verdict"] == verdict.id
    assert out["watermark"]["detected"] and out["ai_generated"]
    assert "PRIVATE KEY" not in done.stdout + done.stderr
    out = json.loads(consentry(env, "provenance", "read", str(plain)).stdout)
    assert out["manifest"]["state"] == "absent" and not out["watermark"]["detected"]
    bad = consentry(env, "provenance", "read", str(tmp_path / "missing.jpg"))
    assert bad.returncode == 2 and "cannot read" in bad.stderr
