"""The client's own bound on a hot-path read: a server that took the statement and then
froze (a stopped process, a hung host that still acknowledges packets, a stuck pooler)
cancels nothing, and libpq has no read timeout, so the thread waiting on its socket (for
a text check, the event loop) would wait for ever. A watchdog shuts that socket down once
the read has run past its deadline: the wait ends with ``OperationalError``, the request
fails closed (503), and the pool drops the connection.

One thread per pool, waking a few times a second, rather than a timer per read: reads
run at thousands a second, and watching one costs two dictionary operations."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_log = logging.getLogger(__name__)


class ReadWatchdog:
    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._watched: dict[int, tuple[float, int]] = {}  # read -> (deadline, socket fd)
        self._lock = threading.Lock()  # a socket is cut only while its read is in flight
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, fd: int) -> Iterator[None]:
        """Cut the socket ``fd`` if the block is still running ``after_s`` from now."""
        if self._thread is None:
            self._start()
        read = next(self._ids)
        self._watched[read] = (time.monotonic() + self.after_s, fd)
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(read, None)

    def stop(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="read-watchdog",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(min(0.25, self.after_s / 4)):
            now = time.monotonic()
            for read, (deadline, fd) in list(self._watched.items()):
                if deadline <= now:
                    with self._lock:
                        if self._watched.pop(read, None) is not None:
                            _cut(fd)


def _cut(fd: int) -> None:
    # shutdown() on a duplicate ends the connection for every descriptor of it, waking
    # the blocked receive; the driver's own descriptor stays open for it to close.
    try:
        with socket.socket(fileno=socket.dup(fd)) as s:
            s.shutdown(socket.SHUT_RDWR)
        _log.warning("a hot-path read got no answer from the database in time; its "
                     "connection was cut")
    except OSError:
        pass  # already closed: the read ended on its own
