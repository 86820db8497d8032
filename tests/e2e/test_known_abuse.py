"""Known abuse blocked on upload and output: block once, block everywhere.

An image is uploaded, then banked; every usual disguise of it is refused on upload, other
photos are not. A refused output is banked and its re-upload refused under another
account. A match in a CSAM bank is never kept as viewable media and suspends for good.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from sqlalchemy import select

from consentry.banks.services import entry_hashes
from consentry.config import Settings
from consentry.errors import Conflict, InvalidRequest
from consentry.gate import Gate
from consentry.policy import load_policy
from consentry.signals.hashing import fingerprint
from consentry.store.models import CheckMedia


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _crop(img: Image.Image, fraction: float) -> Image.Image:
    w, h = img.size
    dx, dy = int(w * fraction), int(h * fraction)
    return img.crop((dx, dy, w - dx, h - dy))


def _letterbox(img: Image.Image) -> Image.Image:
    w, h = img.size
    canvas = Image.new("RGB", (w, int(h * 1.4)))
    canvas.paste(img, (0, int(h * 0.2)))
    return canvas


DISGUISES = {
    "resized": lambda im: im.resize((im.width // 2, im.height // 2)),
    "jpeg q50": lambda im: Image.open(io.BytesIO(_jpeg(im, 50))),
    "brightened": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "cropped 5%": lambda im: _crop(im, 0.05),
    "cropped and resized": lambda im: _crop(im, 0.05).resize((int(im.width * 0.72),
                                                               int(im.height * 0.72))),
    "rotated 90": lambda im: im.rotate(90, expand=True),
    "mirrored": ImageOps.mirror,
    "letterboxed": _letterbox,
}


def test_a_banked_upload_is_refused_in_every_disguise(gate: Gate, photos):
    original = photos["china"]
    first = gate.check_upload(original, "uploader", "post-1")
    assert first.decision == "allow"
    assert gate.banks.content.get("post-1") is not None

    # A victim reports it: it goes into the NCII bank.
    gate.banks.registry.create("victims", "block", "ncii")
    entry = gate.banks.registry.add_entry("victims", entry_hashes(fingerprint(original)))
    assert [r.content_id for r in gate.banks.content.copies(
        entry.md5, fingerprint(original).query_array())] == ["post-1"]

    img = Image.open(io.BytesIO(original))
    for name, disguise in DISGUISES.items():
        verdict = gate.check_upload(_jpeg(disguise(img)), f"reuploader-{name}")
        assert (verdict.decision, verdict.policy.clause) == ("block", "II-3"), name
        [match] = [r for r in verdict.reasons if r["code"] == "hash_match"]
        assert match["bank"] == "victims" and match["distance"] <= 31, name
        assert verdict.enforcement.strike_weight == 2

    for other in ("flower", "coffee", "astronaut", "hopper"):
        assert gate.check_upload(photos[other], "someone").decision == "allow", other


def test_a_refused_output_is_banked_and_its_reupload_refused(gate: Gate, db, analyser, clock,
                                                            photos, tmp_path: Path):
    generation = gate.check_generation("make it look like a painting", [photos["astronaut"]],
                                       "creator")
    assert generation.decision == "allow"
    # A stricter platform policy: any nudity score counts as intimate. With the real model
    # and a real photo this makes the output refusable without shipping explicit images.
    text = Path(load_policy.__code__.co_filename).with_name("default.yaml").read_text()
    strict = tmp_path / "strict.yaml"
    strict.write_text(text.replace("intimate_image: 0.80", "intimate_image: 0.01"))
    # The same service (its data folder, so its secret key and evidence keys) restarted
    # under the stricter policy.
    gate = Gate(db, settings=Settings(data_dir=gate.settings.data_dir, policy_path=strict),
                analyser=analyser, clock=clock)
    try:
        output = photos["astronaut"]  # the model's output, as it came back
        refused = gate.check_output(output, generation.id)
        assert (refused.decision, refused.policy.clause) == ("block", "II-1")
        assert refused.account.id == "creator"
        [bank] = [b for b in gate.banks.registry.list() if b.name == "own-refusals"]
        assert bank.active_entries == 1

        again = gate.check_upload(_jpeg(Image.open(io.BytesIO(output)).rotate(90, expand=True)),
                                  "someone-else")
        assert (again.decision, again.policy.clause) == ("block", "II-1")
        assert any(r["code"] == "hash_match" and r["bank"] == "own-refusals"
                   for r in again.reasons)
    finally:
        gate.close()


def test_a_csam_match_is_never_kept_viewable_and_suspends_for_good(gate: Gate, db, photos):
    gate.banks.registry.create("ncmec", "block", "csam")
    banked = photos["flower"]  # stands in for a listed image; only its hashes are used
    gate.banks.registry.add_entry("ncmec", entry_hashes(fingerprint(banked)), source="ncmec")
    verdict = gate.check_upload(banked, "offender", "post-9")
    assert (verdict.decision, verdict.policy.clause, verdict.category) == \
        ("block", "KM-1", "known_abuse_match")
    assert verdict.account.status == "permanently_suspended"
    assert verdict.enforcement.law_enforcement_report
    with db.transaction() as s:
        assert s.scalars(select(CheckMedia).where(CheckMedia.check_id == verdict.id)).all() == []
    assert gate.banks.content.get("post-9") is None  # never joins the platform's content


@pytest.mark.parametrize("bad", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_hostile_uploads_are_clear_errors(gate: Gate, bad):
    from consentry.gate import InvalidRequest

    with pytest.raises(InvalidRequest):
        gate.check_upload(bad, "a")


def test_an_output_must_come_from_a_generation_that_was_allowed(gate: Gate, photos):
    """An unknown generation id is bad input; a refused one means the output must not
    exist. Neither is checked, so neither is registered as content."""
    with pytest.raises(InvalidRequest) as unknown:
        gate.check_output(photos["coffee"], "chk_unknown")
    assert unknown.value.field == "generation_id"
    refused = gate.check_generation("put her in a bikini", [photos["astronaut"]], "u-out")
    assert refused.decision == "block"
    with pytest.raises(Conflict):
        gate.check_output(photos["coffee"], refused.id)
    assert gate.banks.content.get(refused.id) is None
