"""Signing an output and reading it back: a valid manifest with our assertions; forged,
tampered and absent manifests reported as such, never trusted."""

from __future__ import annotations

import io

import c2pa
import pytest
from PIL import Image
from provenance_keys import make_credentials

from consentry.config import Settings
from consentry.gate.marking import (
    ProvenanceNotConfigured,
    SigningCredentials,
    mark_image,
    signing_credentials,
    trust_anchors,
)
from consentry.signals.manifest import (
    TRAINED_ALGORITHMIC_MEDIA,
    ManifestState,
    read_manifest,
    reader_settings,
)

OURS = make_credentials("Platform")
FORGER = make_credentials("Forger")


def sign(data: bytes, creds=OURS) -> bytes:
    return mark_image(data, credentials=SigningCredentials(creds.key_pem, creds.chain_pem),
                      generator="ImageGen 3", verdict_id="chk_123",
                      policy_version="1.1.0").content


@pytest.fixture(scope="module")
def signed(photos) -> bytes:
    return sign(photos["astronaut"])


def test_a_signed_output_reads_back_valid_with_the_c2pa_tool(signed):
    context = c2pa.Context(c2pa.Settings.from_dict(reader_settings(OURS.ca_pem)))
    with c2pa.Reader("image/jpeg", io.BytesIO(signed), None, context) as reader:
        assert reader.get_validation_state() == "Trusted"
        active = reader.get_active_manifest()
    labels = {a["label"]: a["data"] for a in active["assertions"]}
    action = labels["c2pa.actions.v2"]["actions"][0]
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"]["name"] == "ImageGen 3"
    assert labels["org.consentry.verdict"]["verdict"] == "chk_123"
    assert labels["org.consentry.verdict"]["policy_version"] == "1.1.0"


def test_our_reader_reports_the_claims_of_a_valid_manifest(signed):
    found = read_manifest(signed, OURS.ca_pem)
    assert found.state is ManifestState.VALID and found.ai_generated
    assert (found.generator, found.verdict, found.policy_version) == (
        "ImageGen 3", "chk_123", "1.1.0")
    assert found.signer is not None and "Platform signer" in found.signer


def test_a_manifest_signed_by_an_untrusted_key_is_not_believed(photos):
    forged = read_manifest(sign(photos["astronaut"], FORGER), OURS.ca_pem)
    assert forged.state is ManifestState.UNTRUSTED
    assert not forged.ai_generated  # its claims are shown, never acted on
    assert forged.generator == "ImageGen 3"


def test_tampered_pixels_make_the_manifest_invalid(signed):
    image = Image.open(io.BytesIO(signed))
    start = signed.index(b"\xff\xda")  # the JPEG scan: change pixels, keep the manifest
    tampered = bytearray(signed)
    for i in range(start + 200, start + 260):
        tampered[i] ^= 0x55
    assert image.size == Image.open(io.BytesIO(bytes(tampered))).size
    found = read_manifest(bytes(tampered), OURS.ca_pem)
    assert found.state is ManifestState.INVALID and not found.ai_generated
    assert any("mismatch" in f for f in found.failures), found.failures


def test_a_damaged_manifest_is_invalid_and_an_unsigned_image_has_none(signed, photos):
    at = signed.index(b"c2pa.signature") + 200  # inside the signature box
    broken = signed[:at] + bytes(b ^ 0xFF for b in signed[at:at + 32]) + signed[at + 32:]
    assert read_manifest(broken, OURS.ca_pem).state is ManifestState.INVALID
    assert read_manifest(photos["coffee"], OURS.ca_pem).state is ManifestState.ABSENT


def test_marking_without_a_configured_key_is_refused(tmp_path):
    with pytest.raises(ProvenanceNotConfigured, match="CONSENTRY_PROVENANCE_KEY"):
        signing_credentials(Settings(data_dir=tmp_path))
    key = tmp_path / "key.pem"
    key.write_text(OURS.key_pem)
    settings = Settings(data_dir=tmp_path, provenance_key=str(key),
                        provenance_certs=OURS.chain_pem)
    assert signing_credentials(settings).key_pem == OURS.key_pem
    assert trust_anchors(settings).strip() == OURS.ca_pem.strip()
    assert OURS.key_pem not in repr(settings)
