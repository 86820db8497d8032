"""The analysis deadline covers the whole check: loading the models, decoding the images in
the sandbox and analysing them. Past it, or when a decoder dies, the request is refused
(FC-1) and recorded; text-only checks never wait for image models."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from hostile_images import scan_bomb
from sqlalchemy import select

from consentry.config import Settings
from consentry.gate import Gate
from consentry.signals.prompt import analyse_prompt
from consentry.signals.sandbox import Sandbox, SandboxLimits, shared_sandbox
from consentry.store.models import CheckRecord


@pytest.fixture(scope="module", autouse=True)
def decoders() -> None:
    shared_sandbox().warm_up()


def test_model_loading_counts_against_the_deadline(db, clock, tmp_path, photos):
    analyse_prompt("warm up")  # the lexicons load once per process (as a server's start)
    # No analyser given: the gate loads the real image models on first use.
    # A deadline far shorter than loading the models takes, even when the files are warm
    # in the page cache (the second backend loads them again in the same process).
    gate = Gate(db, settings=Settings(data_dir=tmp_path, analysis_timeout_s=0.1), clock=clock)
    loaded_at: list[float] = []
    try:
        start = time.perf_counter()
        # The load the check below starts on first use (started here to time it; the
        # check finds it running and does not start another).
        loading = gate._load_models()
        loading.add_done_callback(lambda _: loaded_at.append(time.perf_counter()))
        verdict = gate.check_generation("put her in a bikini", [photos["astronaut"]], "u1")
        answered = time.perf_counter()
        loading.result(timeout=120)
    finally:
        gate.close()
    assert (verdict.decision, verdict.policy.clause) == ("block", "FC-1")
    # Past the deadline while loading the models, or while decoding beside the load.
    assert verdict.reasons[0]["kind"] in {"TimeoutError", "DecodeTimeout"}
    # dlib and onnxruntime hold the GIL while they read their weights (about a second
    # here), so a check in a cold process answers when the load lets it run, and never
    # analyses after it; a server loads the models before it serves (Gate.warm_up).
    assert answered < loaded_at[0] + 0.5, (
        f"answered after {answered - start:.2f} s, the models were loaded after "
        f"{loaded_at[0] - start:.2f} s: the check waited on past the load")


def test_text_only_checks_never_wait_for_image_models(db, clock, tmp_path):
    def loading() -> int:
        return sum(t.name == "consentry-models" for t in threading.enumerate())

    # A deadline far shorter than loading the models takes, even when the files are warm
    # in the page cache (the second backend loads them again in the same process).
    gate = Gate(db, settings=Settings(data_dir=tmp_path, analysis_timeout_s=0.1), clock=clock)
    try:
        # The text models are loaded as a server's start does (``warm_up``), so that the
        # figure is the same whichever test ran first in this process.
        analyse_prompt("warm up")
        if gate.semantic is not None:
            gate.semantic.match("warm up")
        before = loading()
        start = time.perf_counter()
        verdict = gate.check_generation("a watercolour of a lighthouse at dusk")
        took = time.perf_counter() - start
        assert verdict.decision == "allow" and took < 0.5
        assert loading() <= before  # no model load was started
    finally:
        gate.close()


def test_a_crashed_decoder_fails_closed_and_is_recorded(db, clock, tmp_path, analyser, photos):
    sandbox = Sandbox(SandboxLimits(workers=1))
    gate = Gate(db, settings=Settings(data_dir=tmp_path, analysis_timeout_s=8), clock=clock,
                analyser=analyser, sandbox=sandbox)
    bomb = scan_bomb(6000, 400)  # decodes for ~9 s: the worker is killed meanwhile
    try:
        pid = sandbox.probe().pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        verdict = gate.check_upload(bomb, "u2")
        assert (verdict.decision, verdict.policy.clause) == ("block", "FC-1")
        assert verdict.reasons[0]["kind"] == "DecoderCrashed"
        with db.transaction() as session:
            assert session.scalars(select(CheckRecord.clause).where(
                CheckRecord.id == verdict.id)).one() == "FC-1"
        # The next worker takes over.
        assert gate.check_upload(photos["coffee"], "u2").decision == "allow"
    finally:
        gate.close()
        sandbox.close()
