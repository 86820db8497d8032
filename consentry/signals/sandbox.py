"""The decoding sandbox: the one place services open untrusted image bytes.

Image decoders are large C libraries fed attacker-chosen bytes. A crafted file can keep
one busy for minutes (a progressive JPEG repeating one scan thousands of times), make it
allocate gigabytes (a small PNG declaring 40 megapixels of 16-bit pixels), or crash it.
So decoding runs in worker processes (``pebble.ProcessPool``, started through a fork
server: the services are multi-threaded, and forking a threaded process is unsafe), and
only bytes go in and small, picklable results come out: the <= 512 px analysis image
(about 0.8 MB) and the ``Fingerprint`` (a few KB).

Each call has a deadline (the caller passes the seconds it has left); past it the worker
is killed and ``DecodeTimeout`` raised. Each worker's address space is capped
(``RLIMIT_AS``), so an allocation bomb ends in a ``MemoryError`` inside the worker, which
comes back as an ``ImageRejected`` (``image_too_complex``); a worker that dies comes back
as ``DecoderCrashed``. At most ``workers`` decodes run at once and at most ``queue`` more
wait; any more are refused at once with ``SandboxBusy`` (HTTP 503 with Retry-After), so
memory stays bounded however many requests arrive.

One sandbox serves the whole process (``shared_sandbox``), started on first use and shut
down at exit; ``install_sandbox`` puts another in its place (tests, embedders).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from pebble import ProcessExpired, ProcessPool

from consentry.errors import Unavailable
from consentry.signals.hashing import (
    Fingerprint,
    ImageHashes,
    decode_and_fingerprint,
    fingerprint,
    image_hashes,
)
from consentry.signals.image import DecodedImage, ImageRejected, decode_image
from consentry.signals.manifest import ManifestFindings, read_manifest
from consentry.signals.preview import FaceBox, Look, Preview, render_preview

log = logging.getLogger(__name__)

T = TypeVar("T")

# Native thread pools (OpenBLAS, OpenMP, MKL) reserve address space per thread; in a
# worker they would eat the memory cap and decode nothing faster.
THREAD_VARIABLES: Final = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_MEMORY_MB: Final = 1536
_KILL_GRACE_S: Final = 0.5  # past the deadline, how long to wait for pebble to kill a worker
_START_TIMEOUT_S: Final = 60.0


def _default_workers() -> int:
    return os.cpu_count() or 2


@dataclass(frozen=True)
class SandboxLimits:
    """How many decodes run and wait at once, the memory each worker may map, and the
    deadline of a call that names none."""

    workers: int = field(default_factory=_default_workers)
    memory_mb: int = DEFAULT_MEMORY_MB  # RLIMIT_AS of each worker; 0: no cap
    queue: int | None = None  # None: 4 per worker
    timeout_s: float = 10.0

    @property
    def waiting(self) -> int:
        return 4 * self.workers if self.queue is None else self.queue


class SandboxBusy(Unavailable):
    """Every decoder is busy and the queue is full (or no decoder was free before the
    caller's deadline): nothing was checked; try again after ``retry_after_s`` seconds
    (HTTP 503 with Retry-After)."""

    code = "busy"


class DecodeFailed(ImageRejected):
    """Decoding started but did not finish: it overran its deadline or its worker died.
    Where a verdict is due this fails closed; elsewhere it is a clear rejection."""


class DecodeTimeout(DecodeFailed):
    """The decode ran past its deadline; its worker was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__("image_too_complex", f"decoding the image took longer than "
                         f"{seconds:.1f} s and was stopped; send a simpler image")
        self.seconds = seconds


class DecoderCrashed(DecodeFailed):
    """The worker died while decoding (a decoder fault, the kernel's OOM killer)."""

    def __init__(self, detail: str) -> None:
        super().__init__("image_undecodable", f"the image decoder failed on this image "
                         f"({detail}); send it in another format")


# -- inside the workers ------------------------------------------------------------------


def _start_worker(memory_bytes: int) -> None:
    """Pebble's worker initializer."""
    # Pebble stops a worker with SIGTERM and waits up to 3 s before SIGKILL; its handler
    # is Python code, which never runs while the decoder is busy in C. The default action
    # ends the process at once. (Pebble only kills a worker that does not hold its pipe's
    # lock, so this cannot leave the lock taken.)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _guarded(decoder: Callable[[bytes], T], data: bytes) -> T:
    try:
        return decoder(data)
    except ImageRejected as exc:
        rejection = ImageRejected(exc.code, str(exc), too_large=exc.too_large)
    except MemoryError:
        rejection = ImageRejected("image_too_complex", "decoding the image needs more memory "
                                  "than one image is allowed", too_large=True)
    except Exception as exc:  # noqa: BLE001 - any decoder failure on untrusted input
        rejection = ImageRejected("invalid_image", f"the image could not be decoded "
                                  f"({type(exc).__name__}: {exc})")
    # A fresh exception, raised outside the handlers: the original's traceback holds the
    # decoder's frames, and so its pixels, which pebble would keep alive (and counted
    # against the memory cap) until the worker's next task.
    del data
    raise rejection


def _decode_task(data: bytes) -> DecodedImage:
    return _guarded(decode_image, data)


def _fingerprint_task(data: bytes) -> Fingerprint:
    return _guarded(fingerprint, data)


def _hashes_task(data: bytes) -> ImageHashes:
    return _guarded(image_hashes, data)


def _both_task(data: bytes) -> tuple[DecodedImage, Fingerprint]:
    return _guarded(decode_and_fingerprint, data)


def _preview_task(data: bytes, *, look: Look, faces: tuple[FaceBox, ...]) -> Preview:
    return _guarded(lambda d: render_preview(d, look, faces), data)


def _upload_task(data: bytes, *, trust_anchors: str | None,
                 ) -> tuple[DecodedImage, Fingerprint, ManifestFindings]:
    def decode_then_read(d: bytes) -> tuple[DecodedImage, Fingerprint, ManifestFindings]:
        decoded, fp = decode_and_fingerprint(d)  # an undecodable image is refused first
        return decoded, fp, read_manifest(d, trust_anchors)

    return _guarded(decode_then_read, data)


@dataclass(frozen=True)
class WorkerProbe:
    """One decoding worker, as it answered a no-op task."""

    pid: int
    mapped_bytes: int  # its address space: what RLIMIT_AS counts


def _probe_task(_: bytes) -> WorkerProbe:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[0])
    return WorkerProbe(os.getpid(), pages * os.sysconf("SC_PAGE_SIZE"))


# -- the sandbox ---------------------------------------------------------------------------


_ENVIRONMENT_LOCK = threading.Lock()


def _context() -> Any:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # The fork server imports these once; each worker is then a cheap fork of it. The main
    # module too (by path, or by name under ``python -m``): multiprocessing would otherwise
    # import it again in every worker.
    main = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None)
    ctx.set_forkserver_preload(["__main__", *([main] if main else []), __name__])
    from multiprocessing import forkserver

    # The fork server (and so every worker) takes the environment as it is when it starts:
    # start it now with single-threaded native libraries, leaving ours unchanged.
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
        os.environ.update({name: "1" for name in THREAD_VARIABLES})
        try:
            forkserver.ensure_running()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return ctx


class Sandbox:
    """Runs the image decoders of ``consentry.signals`` in worker processes, with a
    deadline per call, a memory cap per worker and bounded concurrency. Thread-safe."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        if self.limits.workers < 1:
            raise ValueError(f"a sandbox needs at least one worker, got {self.limits.workers}")
        self._slots = threading.BoundedSemaphore(self.limits.workers)
        self._admission = threading.Lock()
        self._inflight = 0  # running + waiting calls
        self._pool_lock = threading.Lock()
        self._pool: Future[ProcessPool] | None = None
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet done: decoding, or waiting for a decoder."""
        return self._inflight

    # -- decoders ------------------------------------------------------------------------

    def decode(self, data: bytes, *, timeout_s: float | None = None) -> DecodedImage:
        """``signals.image.decode_image`` in a worker."""
        return self._run(_decode_task, data, timeout_s)

    def fingerprint(self, data: bytes, *, timeout_s: float | None = None) -> Fingerprint:
        """``signals.hashing.fingerprint`` in a worker."""
        return self._run(_fingerprint_task, data, timeout_s)

    def hashes(self, data: bytes, *, timeout_s: float | None = None) -> ImageHashes:
        """``signals.hashing.image_hashes`` in a worker."""
        return self._run(_hashes_task, data, timeout_s)

    def decode_and_fingerprint(self, data: bytes, *, timeout_s: float | None = None,
                               ) -> tuple[DecodedImage, Fingerprint]:
        """``signals.hashing.decode_and_fingerprint`` in a worker: one decode for both."""
        return self._run(_both_task, data, timeout_s)

    def preview(self, data: bytes, look: Look = Look.BLURRED, *,
                faces: Sequence[FaceBox] = (), timeout_s: float | None = None) -> Preview:
        """``signals.preview.render_preview`` in a worker: what a reviewer is shown."""
        task = partial(_preview_task, look=look, faces=tuple(faces))
        return self._run(task, data, timeout_s)

    def decode_with_manifest(self, data: bytes, trust_anchors: str | None, *,
                             timeout_s: float | None = None,
                             ) -> tuple[DecodedImage, Fingerprint, ManifestFindings]:
        """``decode_and_fingerprint``, then ``signals.manifest.read_manifest`` (c2pa-rs
        parses the container), in one trip to one worker: an upload takes one decoder."""
        return self._run(partial(_upload_task, trust_anchors=trust_anchors), data,
                         timeout_s)

    # -- lifecycle -------------------------------------------------------------------------

    def probe(self, timeout_s: float = _START_TIMEOUT_S) -> WorkerProbe:
        """Run a no-op in a worker (starting them if need be): which process it is and
        how much address space it maps before decoding anything. For health checks."""
        return self._run(_probe_task, b"", timeout_s)

    def warm_up(self, timeout_s: float = _START_TIMEOUT_S) -> int:
        """Start the workers now rather than on the first image. Returns (and logs) the
        address space a worker maps before it decodes anything, in bytes: what the
        memory cap leaves for decoding is the cap less this."""
        self._ready_pool(time.monotonic() + timeout_s)
        base = self.probe(timeout_s).mapped_bytes
        cap = self.limits.memory_mb * 2**20
        log.info("%d image decoding workers ready; each maps %d MB of its %s cap",
                 self.limits.workers, base // 2**20,
                 f"{self.limits.memory_mb} MB" if cap else "(no)")
        if cap and base > cap * 0.75:
            log.warning("decoding workers start with %d MB mapped, close to their %d MB "
                        "cap (CONSENTRY_DECODE_MEMORY_MB): large images will be refused",
                        base // 2**20, self.limits.memory_mb)
        return base

    def close(self) -> None:
        """Stop the workers; calls after this raise ``SandboxBusy``."""
        with self._pool_lock:
            self._closed = True
            starting, self._pool = self._pool, None
        if starting is not None:
            _stop(starting)

    # -- internals -------------------------------------------------------------------------

    def _run(self, task: Callable[[bytes], T], data: bytes, timeout_s: float | None) -> T:
        timeout = self.limits.timeout_s if timeout_s is None else max(0.0, timeout_s)
        deadline = time.monotonic() + timeout
        with self._admission:
            if self._inflight >= self.limits.workers + self.limits.waiting:
                raise SandboxBusy(f"all {self.limits.workers} image decoders are busy and "
                                  f"{self.limits.waiting} images are waiting; try again")
            self._inflight += 1
        try:
            if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise SandboxBusy(f"no image decoder came free within {timeout:.1f} s")
            try:
                return self._decode_in_worker(task, data, deadline, timeout)
            finally:
                self._slots.release()
        finally:
            with self._admission:
                self._inflight -= 1

    def _decode_in_worker(self, task: Callable[[bytes], T], data: bytes, deadline: float,
                          timeout: float) -> T:
        pool = self._ready_pool(deadline)
        if not pool.active:  # it broke while idle (a worker died outside a task)
            self._replace(pool)
            pool = self._ready_pool(deadline)
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxBusy(f"no image decoder came free within {timeout:.1f} s")
        try:
            future = pool.schedule(task, args=(data,), timeout=left)
        except RuntimeError as exc:  # the pool broke (a worker died outside a task)
            self._replace(pool)
            raise DecoderCrashed("the decoding workers had stopped") from exc
        try:
            return future.result(timeout=left + _KILL_GRACE_S)
        except TimeoutError as exc:  # pebble's (it killed the worker) or ours
            future.cancel()  # kills the worker if pebble has not yet
            raise DecodeTimeout(timeout) from exc
        except ProcessExpired as exc:
            raise DecoderCrashed(_exit_reason(exc.exitcode)) from exc
        except (BrokenProcessPool, CancelledError) as exc:
            self._replace(pool)
            raise DecoderCrashed("the decoding workers stopped") from exc

    def _ready_pool(self, deadline: float) -> ProcessPool:
        """The running pool, waiting for it to start no later than ``deadline``."""
        with self._pool_lock:
            if self._closed:
                raise SandboxBusy("the image decoders are shut down")
            if self._pool is None:
                self._pool = _start(self.limits)
            starting = self._pool
        try:
            return starting.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise SandboxBusy("the image decoders are still starting; try again") from exc
        except Exception as exc:
            with self._pool_lock:
                if self._pool is starting:
                    self._pool = None  # the next call tries again
            raise SandboxBusy(f"the image decoders could not start: {exc}") from exc

    def _replace(self, pool: ProcessPool) -> None:
        with self._pool_lock:
            current = self._pool
            if current is not None and current.done() and not current.exception() \
                    and current.result() is pool:
                self._pool = None
        threading.Thread(target=_stop_pool, args=(pool,), daemon=True).start()


def _start(limits: SandboxLimits) -> Future[ProcessPool]:
    """Start a pool on a background thread (the fork server's first start imports the
    application, which must not hold up a caller past its deadline)."""
    started: Future[ProcessPool] = Future()

    def run() -> None:
        try:
            pool = ProcessPool(max_workers=limits.workers, initializer=_start_worker,
                               initargs=(limits.memory_mb * 2**20,), context=_context())
            if not pool.active:  # starts the workers
                raise RuntimeError("the decoding pool did not start")
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            started.set_exception(exc)
        else:
            started.set_result(pool)

    threading.Thread(target=run, name="consentry-sandbox-start", daemon=True).start()
    return started


def _stop(starting: Future[ProcessPool]) -> None:
    """Stop a pool now, or as soon as it has started (an exiting process does not wait
    for a start it no longer needs; its workers end with it)."""

    def stop(done: Future[ProcessPool]) -> None:
        if done.exception() is None:
            _stop_pool(done.result())

    starting.add_done_callback(stop)


def _stop_pool(pool: ProcessPool) -> None:
    pool.stop()
    pool.join(timeout=10)


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"the worker was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"the worker was killed by signal {-exitcode}"
    return f"the worker exited with status {exitcode}"


# -- the process-wide sandbox -----------------------------------------------------------


_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared_sandbox(limits: SandboxLimits | None = None) -> Sandbox:
    """The process-wide sandbox, created on first use with ``limits`` (later callers share
    it as it is) and closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sandbox(limits)
        return _shared


def install_sandbox(sandbox: Sandbox | None) -> Sandbox | None:
    """Make ``sandbox`` the process-wide one (None: the next use creates one); returns the
    one it replaces, which the caller closes if it is done with it."""
    global _shared
    with _shared_lock:
        previous, _shared = _shared, sandbox
        return previous


@atexit.register
def _close_shared() -> None:
    with _shared_lock:
        sandbox = _shared
    if sandbox is not None:
        sandbox.close()
