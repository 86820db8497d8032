"""The decoding sandbox: the same results as decoding in process, small results, a
deadline that stops the worker, a memory cap, crashes and a full queue answered clearly."""

from __future__ import annotations

import io
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from hostile_images import png16_rgba, scan_bomb
from PIL import Image

from consentry.signals.hashing import decode_and_fingerprint, fingerprint, image_hashes
from consentry.signals.image import ImageRejected, decode_image
from consentry.signals.sandbox import (
    DecoderCrashed,
    DecodeTimeout,
    Sandbox,
    SandboxBusy,
    SandboxLimits,
    shared_sandbox,
)


@pytest.fixture(scope="module")
def slow_jpeg() -> bytes:
    """Decodes for ~9 s in process (a scan bomb under the scan limit)."""
    return scan_bomb(6000, 400)


@pytest.fixture(scope="module")
def big_photo(photos) -> bytes:
    """A 12 MP photo, as phones take them."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(photos["astronaut"])).resize((4000, 3000)).save(buf, "JPEG",
                                                                           quality=90)
    return buf.getvalue()


@pytest.fixture
def single() -> Iterator[Sandbox]:
    """One worker, one waiting place: easy to fill."""
    sandbox = Sandbox(SandboxLimits(workers=1, queue=1, timeout_s=10))
    sandbox.warm_up()
    yield sandbox
    sandbox.close()


def in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, list]:
    out: list = []

    def run() -> None:
        try:
            out.append(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_results_match_decoding_in_process(photos, big_photo):
    sandbox = shared_sandbox()
    for data in (photos["astronaut"], photos["hopper"], big_photo):
        decoded = sandbox.decode(data)
        here = decode_image(data)
        assert (decoded.width, decoded.height, decoded.scale) == (here.width, here.height,
                                                                  here.scale)
        assert decoded.analysis.tobytes() == here.analysis.tobytes()
        assert sandbox.fingerprint(data) == fingerprint(data)
        assert sandbox.hashes(data) == image_hashes(data)
        both = sandbox.decode_and_fingerprint(data)
        assert both[1] == fingerprint(data)
        assert both[0].analysis.size == here.analysis.size


def test_only_small_results_cross_the_process_boundary(big_photo):
    decoded, fp = decode_and_fingerprint(big_photo)
    analysis, hashes = len(pickle.dumps(decoded)), len(pickle.dumps(fp))
    print(f"\n12 MP photo: analysis image {analysis} bytes, fingerprint {hashes} bytes "
          f"pickled (the photo is {len(big_photo)} bytes)")
    assert analysis < 1_000_000 and hashes < 20_000


def test_a_decode_past_its_deadline_is_stopped(single, slow_jpeg, photos):
    start = time.perf_counter()
    with pytest.raises(DecodeTimeout) as caught:
        single.decode(slow_jpeg, timeout_s=1.0)
    took = time.perf_counter() - start
    assert caught.value.code == "image_too_complex" and "1.0 s" in str(caught.value)
    assert took < 2.0, f"answered after {took:.2f} s"
    # The worker was killed, not left decoding: the next image is decoded at once.
    start = time.perf_counter()
    single.decode(photos["astronaut"], timeout_s=5)
    assert time.perf_counter() - start < 1.5


def test_a_full_queue_is_refused_at_once_and_a_wait_past_the_deadline_too(single, slow_jpeg,
                                                                         photos):
    running, _ = in_thread(single.decode, slow_jpeg, timeout_s=3)
    time.sleep(0.3)
    waiting, waited = in_thread(single.decode, photos["astronaut"], timeout_s=1.0)
    time.sleep(0.2)
    start = time.perf_counter()
    with pytest.raises(SandboxBusy) as busy:  # 1 running + 1 waiting: full
        single.decode(photos["astronaut"])
    assert time.perf_counter() - start < 0.1 and busy.value.retry_after_s >= 1
    waiting.join()
    assert isinstance(waited[0], SandboxBusy) and "came free" in str(waited[0])
    running.join()


def test_the_memory_cap_turns_an_allocation_bomb_into_a_rejection(photos):
    fresh = Sandbox(SandboxLimits(workers=1, memory_mb=0))
    try:
        base = fresh.probe().mapped_bytes  # a new worker, before it decodes anything
    finally:
        fresh.close()
    # Room for an ordinary photo, not for the 159 MB of a 40 MP RGBA image.
    capped = Sandbox(SandboxLimits(workers=1, memory_mb=(base >> 20) + 120, timeout_s=10))
    try:
        with pytest.raises(ImageRejected) as caught:
            capped.decode(png16_rgba())
        assert caught.value.code == "image_too_complex" and "memory" in str(caught.value)
        # The failed decode's memory is given back: the same worker decodes the next image.
        assert capped.decode(photos["astronaut"]).analysis.size == (512, 512)
        assert capped.probe().mapped_bytes < base + 40 * 2**20
    finally:
        capped.close()


def test_a_crashed_worker_is_reported_and_replaced(single, slow_jpeg, photos):
    pid = single.probe().pid
    decoding, out = in_thread(single.decode, slow_jpeg, timeout_s=5)
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    decoding.join()
    assert isinstance(out[0], DecoderCrashed) and "SIGKILL" in str(out[0])
    # A worker that dies while idle is replaced too.
    os.kill(single.probe().pid, signal.SIGKILL)
    time.sleep(0.3)
    assert single.decode(photos["astronaut"], timeout_s=5).analysis.size == (512, 512)


def test_a_closed_sandbox_refuses_work(photos):
    sandbox = Sandbox(SandboxLimits(workers=1))
    sandbox.close()
    with pytest.raises(SandboxBusy):
        sandbox.decode(photos["astronaut"])
