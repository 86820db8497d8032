"""Group commit: many requests' writes made durable by one transaction.

A check's record is a handful of rows; committing each on its own makes the commit (an
fsync on SQLite, a round trip and a WAL flush on PostgreSQL, and the audit chain's head
lock on both) the cost that caps throughput. ``BatchWriter`` queues each request's write
(a function of a session) and one thread writes what has queued, up to ``max_batch`` at a
time, in a single transaction. Should one write fail (a duplicate idempotency key), the
batch is written again with each write in a savepoint of its own, so that the failing
write fails only its request; savepoints only then, since each costs two round trips.

The caller waits until its write is committed (``write``; or ``submit``, then
``Pending.when_done`` for a caller on an event loop): a verdict is only ever returned
once it is durable. Nothing is dropped: a full queue makes callers wait (back-pressure), and a write
that cannot be queued or committed in time raises ``Unavailable`` (HTTP 503, "not
checked"), so the request fails closed rather than being answered from memory.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy.orm import Session

from consentry.errors import Unavailable
from consentry.store.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP: Final = object()


class Pending(Generic[T]):
    """A write queued in a batch: ``wait`` for its result, or be told when it is done
    (``when_done``), for a caller that must not block a thread on it (an event loop)."""

    def __init__(self, write: Callable[[Session], T], timeout_s: float) -> None:
        self.write = write
        self.timeout_s = timeout_s
        self.result: T | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self) -> T:
        """The write's result once committed; its exception is raised here, and
        ``Unavailable`` when it was not committed within the writer's timeout."""
        if not self._done.wait(self.timeout_s):
            raise not_recorded_in_time()
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the write is committed or has failed: at once if it is,
        otherwise on the writing thread (so it must only hand over, as
        ``loop.call_soon_threadsafe`` does)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def _finish(self) -> None:
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


def not_recorded_in_time() -> Unavailable:
    # It may still be committed later; the caller's retry with the same idempotency key
    # is then answered from the record.
    return Unavailable("the check could not be recorded in time; it was not answered, "
                       "try again with the same idempotency key", code="busy")


@dataclass(frozen=True)
class BatchStats:
    batches: int
    writes: int
    queued: int


class BatchWriter:
    def __init__(self, db: Database, *, max_batch: int = 256, max_wait_s: float = 0.002,
                 capacity: int = 4096, timeout_s: float = 5.0) -> None:
        if max_batch < 1 or capacity < max_batch:
            raise ValueError("max_batch must be at least 1 and at most capacity")
        self.db = db
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._batches = self._writes = 0
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def write(self, write: Callable[[Session], T]) -> T:
        """Run ``write`` in a shared transaction and return its result once committed.
        Its exception is raised here; ``Unavailable`` when it could not be queued or
        committed within ``timeout_s``. Where another write of its batch fails, ``write``
        runs again (its first run rolled back): it must keep all its effects in the
        session and not depend on state an earlier run changed."""
        pending = self.submit(write)
        assert pending is not None  # waited for room
        return pending.wait()

    def submit(self, write: Callable[[Session], T], *,
               wait_for_room: bool = True) -> Pending[T] | None:
        """Queue ``write`` (as ``write`` does) and return at once. A full queue makes the
        caller wait up to ``timeout_s`` for room, then raises ``Unavailable``; with
        ``wait_for_room=False`` it returns None instead, and nothing was queued."""
        job: Pending[T] = Pending(write, self.timeout_s)
        try:
            if wait_for_room:
                self._queue.put(job, timeout=self.timeout_s)
            else:
                self._queue.put_nowait(job)
        except queue.Full:
            if not wait_for_room:
                return None
            raise Unavailable("too many checks are waiting to be recorded; nothing was "
                              "checked, try again", code="busy") from None
        return job

    @property
    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._writes, self._queue.qsize())

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout=self.timeout_s * 2)

    # -- the writing thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[Pending[Any]] = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get(timeout=self.max_wait_s)
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                batch.append(job)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[Pending[Any]]) -> None:
        try:
            try:
                # The usual case: every write succeeds, one transaction and no savepoints.
                # Flushed together at commit: the rows go in a few multi-row statements.
                with self.db.transaction() as s:
                    for job in batch:
                        job.result = job.write(s)
            except Exception:  # which write failed is found below
                if len(batch) == 1:
                    raise
                # A write failed and rolled the batch back: again, each write in a
                # savepoint of its own, so that it fails alone.
                with self.db.transaction() as s:
                    for job in batch:
                        self._one(s, job)
            self._batches += 1
            self._writes += len(batch)
        except Exception as exc:  # noqa: BLE001 - the commit failed: none is durable
            log.warning("%s failed to commit: %s", "a write" if len(batch) == 1
                        else f"a batch of {len(batch)} writes", type(exc).__name__)
            for job in batch:
                if job.error is None:
                    job.error, job.result = exc, None
        finally:
            for job in batch:
                job._finish()

    @staticmethod
    def _one(s: Session, job: Pending[Any]) -> None:
        # What hooks keep in session.info for the commit (audit links, statements of
        # reasons): a write rolled back must leave none of its own behind, and must not
        # take the others' with it (a rollback hook may clear them all).
        kept = {k: list(v) if isinstance(v, list) else v for k, v in s.info.items()}
        job.result, job.error = None, None
        try:
            with s.begin_nested():
                job.result = job.write(s)
                s.flush()
                s.flush()  # rows that flush hooks added
        except Exception as exc:  # noqa: BLE001 - this write fails alone
            job.error = exc
            s.info.clear()
            s.info.update(kept)
