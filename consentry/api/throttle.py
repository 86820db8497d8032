"""Per-client limits on the public takedown endpoints: failed status-page lookups (on top
of each case's own PIN lock, so one client cannot walk through case numbers guessing a
few PINs on each) and submissions (so one client cannot flood the channel)."""

from __future__ import annotations

import threading
import time
from collections import deque


class ClientThrottle:
    """At most ``limit`` recorded events per client in a sliding window."""

    def __init__(self, limit: int = 20, window_s: float = 900.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client)) >= self.limit

    def record(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a flood
                self._failures.clear()
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        q = self._failures.setdefault(client, deque())
        cutoff = time.monotonic() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q
