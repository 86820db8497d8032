"""The watermark survives a screenshot-like re-encode (resize, JPEG q75, metadata gone)
on the public test photos, and is not found in the unmarked originals."""

from __future__ import annotations

from public_photos import public_photos, screenshot

from consentry.signals.watermark import DETECTION_THRESHOLD, detect_mark, embed_mark


def test_the_mark_survives_a_screenshot_on_at_least_95_percent_of_the_photos():
    images = public_photos()
    assert len(images) >= 20
    detected = [detect_mark(screenshot(embed_mark(rgb))).detected for rgb in images.values()]
    assert sum(detected) / len(detected) >= 0.95, dict(zip(images, detected, strict=True))
    unmarked = [detect_mark(rgb) for rgb in images.values()]
    assert not any(f.detected for f in unmarked)
    assert max(f.score for f in unmarked) < DETECTION_THRESHOLD
