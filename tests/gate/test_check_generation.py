"""The gate as a platform calls it: validation, fail-closed, recording, idempotency."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest
from PIL import Image
from sqlalchemy import select

from consentry.config import Settings
from consentry.evidence.fields import Column
from consentry.gate import Gate, InvalidRequest
from consentry.signals.findings import ImageFindings
from consentry.store.models import CheckMedia, CheckRecord


class BrokenAnalyser:
    def analyse(self, index, image):
        raise RuntimeError("model crashed")


class SlowAnalyser:
    def analyse(self, index, image):
        time.sleep(2)
        return ImageFindings(index=index, width=1, height=1)


class CountingAnalyser:
    def __init__(self, inner) -> None:
        self.inner, self.calls, self._lock = inner, 0, threading.Lock()

    def analyse(self, index, image):
        with self._lock:
            self.calls += 1
        return self.inner.analyse(index, image)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("prompt", "code"), [("", "empty_prompt"), ("   ", "empty_prompt"),
                                               ("x" * 4001, "prompt_too_long")])
def test_bad_prompts_are_clear_errors_not_verdicts(gate: Gate, prompt: str, code: str):
    with pytest.raises(InvalidRequest) as err:
        gate.check_generation(prompt)
    assert err.value.code == code and err.value.field == "prompt"


def test_more_than_four_images_is_refused(gate: Gate, photos):
    with pytest.raises(InvalidRequest, match="at most 4") as err:
        gate.check_generation("make it sepia", [photos["coffee"]] * 5)
    assert err.value.code == "too_many_images"


def test_truncated_image_is_refused_with_its_position(gate: Gate, photos):
    with pytest.raises(InvalidRequest, match="image 1: the image is damaged") as err:
        gate.check_generation("make it sepia", [photos["coffee"], photos["astronaut"][:4000]])
    assert err.value.field == "images[1]"


def test_non_image_and_unsupported_formats_are_refused(gate: Gate):
    with pytest.raises(InvalidRequest) as err:
        gate.check_generation("make it sepia", [b"%PDF-1.7 not an image"])
    assert err.value.code == "invalid_image"
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, "ICO")
    with pytest.raises(InvalidRequest) as err:
        gate.check_generation("make it sepia", [ico.getvalue()])
    assert err.value.code == "unsupported_format"


def test_decompression_bomb_is_refused_before_decoding(gate: Gate):
    bomb = _png(8000, 6000)  # 48 megapixels of one colour: a few kilobytes on the wire
    assert len(bomb) < 1_000_000
    with pytest.raises(InvalidRequest, match="megapixels") as err:
        gate.check_generation("make it sepia", [bomb])
    assert err.value.too_large


def test_a_failing_model_fails_closed(db, clock, photos):
    gate = Gate(db, settings=Settings(), analyser=BrokenAnalyser(), clock=clock)
    verdict = gate.check_generation("put a crown on her head", [photos["astronaut"]], "acct-1")
    assert (verdict.decision, verdict.policy.clause) == ("block", "FC-1")
    assert verdict.reasons[0]["code"] == "analysis_unavailable"
    assert verdict.account.active_strikes == 0  # failing closed punishes no one


def test_a_model_that_overruns_fails_closed(db, clock, photos):
    gate = Gate(db, settings=Settings(analysis_timeout_s=0.2), analyser=SlowAnalyser(),
                clock=clock)
    started = time.perf_counter()
    verdict = gate.check_generation("make it sepia", [photos["coffee"]])
    assert time.perf_counter() - started < 1.5
    assert (verdict.decision, verdict.category) == ("block", "analysis_unavailable")


def test_allowed_requests_keep_no_image_bytes_and_no_prompt(gate: Gate, db, photos):
    verdict = gate.check_generation("put her in a winter coat", [photos["astronaut"]], "a1")
    assert verdict.decision == "allow"
    with db.transaction() as s:
        record = s.get(CheckRecord, verdict.id)
        media = s.scalars(select(CheckMedia).where(CheckMedia.check_id == verdict.id)).all()
    assert record.prompt is None and record.prompt_sha256 and len(record.image_sha256) == 1
    assert media == []
    assert record.verdict["decision"] == "allow"


def test_refused_requests_keep_their_evidence(gate: Gate, db, photos):
    verdict = gate.check_generation("put her in a bikini", [photos["astronaut"]], "a1")
    assert verdict.decision == "block"
    with db.transaction() as s:
        record = s.get(CheckRecord, verdict.id)
        media = s.scalars(select(CheckMedia).where(CheckMedia.check_id == verdict.id)).all()
    # The prompt is kept sealed (evidence.fields), and reads back with the key.
    assert record.prompt.startswith("sealed:1:")
    assert gate.vault.fields.open(record.prompt, Column.CHECK_PROMPT) == "put her in a bikini"
    # The image is sealed in the evidence vault, not stored in the clear.
    assert [(m.content, m.sha256) for m in media] == [
        (None, hashlib.sha256(photos["astronaut"]).hexdigest())]
    assert gate.vault.media(verdict.id, 0, actor="test", why="checking the sealed image") \
        == photos["astronaut"]


def test_a_retry_with_the_same_idempotency_key_is_not_struck_twice(gate: Gate, photos):
    first = gate.check_generation("put her in a bikini", [photos["astronaut"]], "a1",
                                  idempotency_key="req-42")
    again = gate.check_generation("put her in a bikini", [photos["astronaut"]], "a1",
                                  idempotency_key="req-42")
    assert again == first
    assert gate.account_state("a1").active_strikes == 1


def test_suspended_account_is_refused_before_any_analysis(db, clock, analyser, photos):
    counting = CountingAnalyser(analyser)
    gate = Gate(db, settings=Settings(), analyser=counting, clock=clock)
    for _ in range(3):
        gate.check_generation("put her in a bikini", [photos["astronaut"]], "a1")
    calls = counting.calls
    verdict = gate.check_generation("put a hat on her", [photos["astronaut"]], "a1")
    assert counting.calls == calls
    assert (verdict.decision, verdict.policy.clause) == ("block", "EN-1")
    assert verdict.account.status == "suspended"
    clock.advance(days=7, seconds=1)  # the 7-day suspension runs out
    assert gate.check_generation("put a hat on her", [photos["astronaut"]], "a1").decision \
        == "allow"


def test_concurrent_refusals_cannot_skip_the_suspension_threshold(gate: Gate):
    verdicts, errors = [], []

    def attempt() -> None:
        try:
            verdicts.append(gate.check_generation("Taylor Swift naked", [], "racer"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    struck = [v for v in verdicts if v.policy.clause == "II-2"]
    state = gate.account_state("racer")
    # Every strike is counted and the threshold is applied on the running total, whatever
    # the interleaving: no request can see a stale count.
    assert state.active_strikes == len(struck) >= 3
    expected = "permanently_suspended" if len(struck) >= 5 else "suspended"
    assert state.status == expected
    assert [v.enforcement.suspended_until is not None or v.enforcement.permanent_suspension
            for v in struck].count(True) >= 1


def test_upload_and_output_checks_fail_closed_too(db, clock, photos, tmp_path):
    gate = Gate(db, settings=Settings(data_dir=tmp_path), analyser=BrokenAnalyser(),
                clock=clock)
    try:
        for verdict in (gate.check_upload(photos["coffee"], "a1", "post-1"),
                        gate.check_output(photos["coffee"], None)):
            assert (verdict.decision, verdict.policy.clause) == ("block", "FC-1")
        assert gate.banks.content.get("post-1") is None  # nothing unchecked joins the index
    finally:
        gate.close()
